"""Import of reps and teams from a CSV file (``baton import reps FILE``).

One row per rep, found by email: a new email adds the rep (name required), a known
one changes the settings its cells give (a blank cell leaves a setting as it is; see
:mod:`baton.domain.rep_rows` for how cells are read). A team a row names that does not
exist yet is created. The file is read as every import reads (every line accounted
for, headers matched forgivingly, ``--map``); a row with any bad cell is rejected as a
whole, with its line number and every problem, into the errors file. The valid rows
are written in one transaction (a roster is small), so a file is applied whole or,
if the database fails, not at all.

Who may: admins (and the operator): creating reps and teams is ``MANAGE_REPS``.
Routing sees the new roster at its next decision (every change bumps the rep's
revision, which the routing cache watches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.batches import RowError, describe
from baton.domain.contact import InvalidContact, normalize_email
from baton.domain.rep_rows import REP_ALIASES, REP_COLUMNS, rep_input
from baton.domain.reps import DEFAULT_HOURS, RepCreate, RepUpdate
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.imports import ImportReport, Progress, _read_and_validate
from baton.store.tables import reps, teams

NEW_REP_DEFAULTS: dict[str, Any] = {
    "timezone": "UTC",
    "working_hours": DEFAULT_HOURS,
    "status": "available",
    "capacity": 20,
    "weight": 1.0,
    "tags": [],
    "countries": [],
    "regions": [],
    "postal_prefixes": [],
    "segments": [],
    "active": True,
}
"""What a new rep gets for a setting the file leaves blank: the same as
:func:`baton.services.reps.create_rep` (``RepCreate``'s documented defaults)."""


class RepRow(BaseModel):
    """One valid row: the rep's email and the checked input (new or a change)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    email: str
    create: RepCreate | None = None
    change: RepUpdate | None = None


@dataclass
class RepImportReport(ImportReport):
    """What a reps import did: reps added, changed and unchanged, teams created."""

    teams_created: int = 0


def _validator(existing: set[str]) -> Any:
    def run(
        model: type[RepRow],
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        context: Mapping[str, Any],
    ) -> tuple[list[tuple[int, RepRow]], list[RowError], list[RowError]]:
        good: list[tuple[int, RepRow]] = []
        errors: list[RowError] = []
        seen = set(existing)
        for number, raw in rows:
            text = str(raw.get("email") or "").strip()
            if not text:
                errors.append(RowError(number, "email", "a rep row needs the rep's email"))
                continue
            try:
                email = normalize_email(text).lower()
            except InvalidContact as exc:
                errors.append(RowError(number, "email", f"not a valid email address: {exc}"))
                continue
            exists = email in seen
            try:
                data = rep_input(raw, exists=exists)
            except ValueError as exc:
                field = "active" if str(exc).startswith("active") else "working_hours"
                errors.append(RowError(number, field, str(exc)))
                continue
            try:
                if exists:
                    good.append(
                        (number, RepRow(email=email, change=RepUpdate.model_validate(data)))
                    )
                else:
                    data["email"] = email
                    good.append(
                        (number, RepRow(email=email, create=RepCreate.model_validate(data)))
                    )
            except ValidationError as exc:
                errors.extend(RowError(number, loc, message) for loc, message in describe(exc))
                continue
            seen.add(email)
        return good, errors, []

    return run


def _team_id(connection: Connection, name: str, now: Any, report: RepImportReport) -> int:
    found = connection.execute(select(teams.c.id).where(teams.c.name == name)).scalar()
    if found is not None:
        return int(found)
    connection.execute(insert(teams).values(name=name, created_at=now))
    report.teams_created += 1
    return int(connection.execute(select(teams.c.id).where(teams.c.name == name)).scalar_one())


def _values(
    connection: Connection, given: Mapping[str, Any], now: Any, report: RepImportReport
) -> dict[str, Any]:
    values = {k: v for k, v in given.items() if k != "team"}
    if "team" in given:
        team = given["team"]
        values["team_id"] = None if team is None else _team_id(connection, team, now, report)
    return values


def import_reps(
    ctx: Context,
    source: Path | IO[str],
    *,
    actor: Principal,
    column_map: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    encoding: str = "utf-8-sig",
) -> RepImportReport:
    """Add or change reps (and create their teams) from a CSV file; see the module
    docstring. ``created``/``updated``/``unchanged`` count reps."""
    allowed(actor, Action.MANAGE_REPS)
    with ctx.read() as connection:
        existing = {str(e).lower() for e in connection.execute(select(reps.c.email)).scalars()}
    read, good = _read_and_validate(
        source,
        encoding=encoding,
        aliases=REP_ALIASES,
        known=REP_COLUMNS,
        column_map=column_map,
        extras_key="ignored",
        model=RepRow,
        context={},
        validate=_validator(existing),
        step=500,
        progress=progress,
    )
    report = RepImportReport(**{f: getattr(read, f) for f in ImportReport.__dataclass_fields__})
    now = ctx.clock.now()
    with ctx.write() as connection:
        for done, (_, row) in enumerate(good, start=1):
            if row.create is not None:
                given = row.create.model_dump(exclude_unset=True)
                values = {**NEW_REP_DEFAULTS, **_values(connection, given, now, report)}
                connection.execute(insert(reps).values(**values, created_at=now, updated_at=now))
                report.created += 1
            elif row.change is not None:
                _change(connection, row.email, row.change, now, report)
            if progress:
                progress("writing", done, len(good))
    report.errors.sort(key=lambda e: e.row)
    return report


def _change(
    connection: Connection, email: str, change: RepUpdate, now: Any, report: RepImportReport
) -> None:
    current = (
        connection.execute(
            select(reps, teams.c.name.label("team_name"))
            .select_from(reps.outerjoin(teams, teams.c.id == reps.c.team_id))
            .where(func.lower(reps.c.email) == email)
        )
        .mappings()
        .one()
    )
    given = change.model_dump(exclude_unset=True)
    same = all(
        (current["team_name"] if name == "team" else current[name]) == value
        for name, value in given.items()
    )
    if same:
        report.unchanged += 1
        return
    connection.execute(
        update(reps)
        .where(reps.c.id == current["id"])
        .values(
            **_values(connection, given, now, report),
            updated_at=now,
            revision=reps.c.revision + 1,
        )
    )
    report.updated += 1
