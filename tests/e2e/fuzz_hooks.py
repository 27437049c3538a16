"""Schemathesis hooks for the OpenAPI run in ``test_openapi_fuzz.py`` (loaded by
``st run`` through ``SCHEMATHESIS_HOOKS``; not a test module).

* Credentials: every request carries an admin's API token. The fuzzer is free to
  revoke that token or disable its user (both are operations it tests), so before
  each request the token is checked in the database and a new admin with a new token
  is made when it no longer works.
* Rules a JSON Schema cannot state, each also written in the operation's docs: a
  period's ``to`` after its ``from``, an absence's ``ends_at`` after its ``starts_at``,
  a phone number possible in its country's numbering plan, a country written as a code
  or an English name that pycountry knows, working hours whose
  intervals start before they end and do not overlap. Schema-valid cases that break
  them are put right before they are sent, so the positive-data check measures
  everything else.
"""

from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import schemathesis

from baton.config import Settings
from baton.domain.access import Role, operator
from baton.domain.business_hours import WorkingHours
from baton.domain.contact import InvalidContact, normalize_country, normalize_phone
from baton.domain.moments import iso_instant
from baton.domain.users import TokenCreate, UserCreate
from baton.services.context import Context, open_context
from baton.services.users import add_user, create_token, token_principal

_context: Context | None = None


def _ctx() -> Context:
    global _context
    if _context is None:
        settings = Settings(database_url=os.environ["BATON_DATABASE_URL"], env="test")
        _context = open_context(settings, migrate=False)
    return _context


def _new_admin_token() -> str:
    ctx = _ctx()
    email = f"fuzz.{uuid.uuid4().hex[:10]}@example.com"
    user, _ = add_user(
        ctx,
        UserCreate(email=email, display_name="fuzz admin", role=Role.ADMIN),
        actor=operator("fuzz"),
        password="correct horse battery staple",
    )
    _, secret = create_token(
        ctx,
        TokenCreate(name="fuzz", scopes=["admin"], user_email=user.email),
        actor=operator("fuzz"),
    )
    return secret


@schemathesis.auth(refresh_interval=None)
class AdminToken:
    """An admin token that still works (made again when the run revoked it)."""

    token: str | None = None

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        if self.token is None or token_principal(_ctx(), self.token) is None:
            AdminToken.token = _new_admin_token()
        assert AdminToken.token is not None
        return AdminToken.token

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _positive(case: schemathesis.Case) -> bool:
    generation = getattr(case.meta, "generation", None) if case.meta else None
    return str(getattr(generation, "mode", "")).lower().endswith("positive")


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _instant(value: Any) -> datetime | None:
    """The moment the API reads from ``value`` (``t``/``z`` in either case, or a space)."""
    spelled = iso_instant(value) if isinstance(value, str) else None
    return datetime.fromisoformat(spelled) if spelled is not None else None


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    if not _positive(case):
        return
    query = case.query if isinstance(case.query, dict) else None
    if query is not None:
        start, end = _date(query.get("from")), _date(query.get("to"))
        if start is not None and end is not None and end <= start:
            if start >= date.max - timedelta(days=1):
                query["from"] = (start - timedelta(days=1)).isoformat()
            else:
                query["to"] = (start + timedelta(days=1)).isoformat()
    body = case.body if isinstance(case.body, dict) else None
    if body is not None:
        start_at, end_at = _instant(body.get("starts_at")), _instant(body.get("ends_at"))
        if start_at is not None and end_at is not None and end_at <= start_at:
            body["ends_at"] = (start_at + timedelta(hours=1)).isoformat()
        if isinstance(body.get("phone"), str) and not _possible_phone(body["phone"]):
            body["phone"] = "+1 415 555 0134"
        if isinstance(body.get("country"), str) and not _country(body["country"]):
            body["country"] = "US"
        if isinstance(body.get("working_hours"), dict) and not _hours(body["working_hours"]):
            body["working_hours"] = {"mon": ["09:00-17:00"]}


def _possible_phone(value: str) -> bool:
    try:
        normalize_phone(value, "US") if value.strip() else None
    except InvalidContact:
        return False
    return True


def _country(value: str) -> bool:
    try:
        normalize_country(value) if value.strip() else None
    except InvalidContact:
        return False
    return True


def _hours(value: dict[str, Any]) -> bool:
    try:
        WorkingHours.parse(value)
    except (ValueError, TypeError):
        return False
    return True
