"""`baton status --json` and `GET /api/v1/status` are the same document, times
included: a newcomer's trial read ``06:24:11.72+00:00`` from one and ``06:24:11.97Z``
from the other. Both now write ISO 8601 with ``Z``, through the API's serializer."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from baton.api.routes.status import DeploymentStatusPublic
from baton.cli.status import status_json
from baton.domain.access import operator
from baton.services.context import Context
from baton.services.status import deployment_status, start_heartbeat


def _times(document: Any, path: str = "") -> dict[str, Any]:
    """Every field ending ``_at`` (a time), by its path in the document."""
    if isinstance(document, dict):
        found: dict[str, Any] = {}
        for key, value in document.items():
            if key.endswith("_at"):
                found[f"{path}/{key}"] = value
            found |= _times(value, f"{path}/{key}")
        return found
    if isinstance(document, list):
        return {
            k: v for i, item in enumerate(document) for k, v in _times(item, f"{path}/{i}").items()
        }
    return {}


def test_the_cli_and_the_api_write_times_alike(sqlite_ctx: Context) -> None:
    start_heartbeat(sqlite_ctx, host="app-1", pid=4182)
    found = deployment_status(sqlite_ctx, actor=operator("ops"))
    from_api = DeploymentStatusPublic.model_validate(asdict(found)).model_dump(mode="json")
    from_cli = json.loads(status_json(found))
    times = _times(from_api)
    assert "/checked_at" in times and "/workers/0/started_at" in times, times
    assert {path: from_cli_value(from_cli, path) for path in times} == times
    assert times["/checked_at"].endswith("Z")


def from_cli_value(document: Any, path: str) -> Any:
    for part in path.strip("/").split("/"):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document
