"""The README documents every setting, command, endpoint and activity type a user can
meet; this fails when one is added without documentation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.domain.activities import ActivityType
from baton.domain.lifecycle import Stage
from baton.services.context import Context

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`BATON_{name.upper()}`" in README


def _commands(group: object, prefix: str = "baton") -> list[str]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
        else:
            found.append(path)
    return found


@pytest.mark.parametrize("command", _commands(get_command(cli_app)))
def test_every_cli_command_is_documented(command: str) -> None:
    assert command in README


def test_every_api_operation_is_documented(sqlite_ctx: Context) -> None:
    spec = create_app(sqlite_ctx).openapi()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert f"`{method.upper()} {path}`" in README, (method, path)
            assert f"`{operation['operationId']}`" in README, operation["operationId"]


def test_every_activity_type_and_stage_is_documented() -> None:
    for kind in ActivityType:
        assert f"`{kind.value}`" in README, kind
    for stage in Stage:
        assert re.search(rf"`{stage.value}`", README), stage


def _contract_keys() -> set[str]:
    from pydantic import BaseModel

    from baton.domain import contract as c

    keys: set[str] = set()
    for model in (
        c.HandoffContract,
        c.Owners,
        c.Scoring,
        c.FitRule,
        c.FieldCondition,
        c.EmailCondition,
        c.EngagementRule,
        c.PropertyFilter,
        c.Grades,
        c.MqlTrigger,
        c.PrepItem,
        c.CostEntry,
        c.Routing,
        c.RoutingRule,
        c.Pool,
        c.Sla,
        c.SlaStep,
        c.RejectionReason,
        c.Qualification,
    ):
        assert issubclass(model, BaseModel)
        keys.update(f.alias or name for name, f in model.model_fields.items())
    return keys


@pytest.mark.parametrize("key", sorted(_contract_keys()))
def test_every_contract_key_is_in_the_reference(key: str) -> None:
    section = README.split("### Contract reference", 1)[1].split("\n## ", 1)[0]
    assert re.search(rf"`[^`\n]*\b{re.escape(key)}\b[^`\n]*`", section), key
