"""Inbound payload adapters: one pure module per kind of intake endpoint.

Each module reads a platform's request into :class:`baton.domain.intake.IntakeItem`
values with ``read(delivery, endpoint)`` and, where the platform signs or keys its
requests, checks that with ``verify(delivery, endpoint)``. Adapters do no I/O: the
service stores the raw request first and calls them, so a fixed mapping can re-read
an old request (``baton intake retry``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from baton.domain.intake import INTAKE_KINDS


def adapter_for(kind: str) -> ModuleType:
    """The adapter module of an endpoint kind (imported on first use, so the CLI and a
    server that never receives a Typeform post do not load its code)."""
    if kind not in INTAKE_KINDS:
        raise ValueError(f"unknown intake kind {kind!r}; known: {', '.join(INTAKE_KINDS)}")
    return importlib.import_module(f"baton.integrations.{kind}")
