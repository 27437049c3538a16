"""Managing the sales side: teams, reps, out-of-office periods and accounts.

Changes that can make someone available (a rep back to ``available``, more capacity,
an absence removed) do not assign queued handoffs themselves: the worker's next tick
does, within its poll interval, so that one code path owns assignment.

Who may do what (see :mod:`baton.domain.access`): admins create teams and reps; a
sales manager changes the reps of their teams and assigns accounts; a rep sees and
changes only their own record, and of it only their profile (:data:`OWN_PROFILE`), so
no one raises their own capacity or widens their own territory. Who manages a rep (its
team and manager) is changed by an admin only, so a manager cannot hand a rep to
another team or take one from it. A rep out of reach is reported as missing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from baton.domain.access import Action, Principal, Reach
from baton.domain.business_hours import Absence, Schedule, WorkingHours
from baton.domain.errors import Conflict, FieldProblem, Forbidden, NotFound, ValidationFailed
from baton.domain.reps import (
    DEFAULT_HOURS,
    AbsenceCreate,
    AccountCreate,
    RepCreate,
    RepUpdate,
    TeamCreate,
)
from baton.domain.routing import Rep
from baton.services.access import allowed, check_rep, rep_scope
from baton.services.context import Context
from baton.services.queries import inserted_id
from baton.store.tables import (
    accounts,
    handoffs,
    rep_absences,
    reps,
    teams,
)


@dataclass(frozen=True)
class TeamPublic:
    id: int
    name: str
    manager_email: str | None
    reps: int


@dataclass(frozen=True)
class AbsencePublic:
    id: int
    starts_at: datetime
    ends_at: datetime
    note: str | None


@dataclass(frozen=True)
class RepPublic:
    """A rep as managers see it, with the current load."""

    id: int
    email: str
    name: str
    team: str | None
    timezone: str
    working_hours: dict[str, list[str]]
    status: str
    capacity: int
    weight: float
    tags: list[str]
    countries: list[str]
    regions: list[str]
    postal_prefixes: list[str]
    segments: list[str]
    manager_email: str | None
    active: bool
    open_handoffs: int
    absences: list[AbsencePublic]


@dataclass(frozen=True)
class AccountPublic:
    id: int
    domain: str
    name: str | None
    owner_email: str | None


def _team_id(connection: Connection, name: str | None) -> int | None:
    if name is None:
        return None
    found = connection.execute(select(teams.c.id).where(teams.c.name == name)).scalar()
    if found is None:
        raise NotFound(f"team '{name}' does not exist; create it first")
    return int(found)


OWN_PROFILE = frozenset({"name", "timezone", "working_hours", "status"})
"""What a rep may change on their own record: how they are named and when they work.
Capacity, weight, territories and the active flag decide how many leads they get, so
their manager sets those."""

WHO_MANAGES = frozenset({"team", "manager_email"})
"""Settings that decide who manages a rep (and so who reaches them): admins only."""


def create_team(ctx: Context, data: TeamCreate, *, actor: Principal) -> TeamPublic:
    """Create a team; its name is what routing pools refer to."""
    allowed(actor, Action.MANAGE_REPS)
    with ctx.write() as connection:
        if connection.execute(select(teams.c.id).where(teams.c.name == data.name)).first():
            raise Conflict(f"team '{data.name}' already exists")
        team_id = inserted_id(
            connection.execute(
                insert(teams).values(
                    name=data.name, manager_email=data.manager_email, created_at=ctx.clock.now()
                )
            )
        )
    return TeamPublic(int(team_id), data.name, data.manager_email, 0)


def list_teams(ctx: Context, *, actor: Principal) -> list[TeamPublic]:
    """Every team with its manager and size, by name; a principal who reaches only
    some reps sees only those reps' teams (a rep: their own team)."""
    level = allowed(actor, Action.READ_REPS)
    query = select(teams).order_by(teams.c.name)
    if level is not Reach.ALL:
        query = query.where(teams.c.id.in_(select(reps.c.team_id).where(rep_scope(actor, level))))
    with ctx.read() as connection:
        counts: dict[int, int] = dict(
            connection.execute(select(reps.c.team_id, func.count()).group_by(reps.c.team_id)).all()
        )
        return [
            TeamPublic(r.id, r.name, r.manager_email, int(counts.get(r.id, 0)))
            for r in connection.execute(query)
        ]


def _rep_row(
    connection: Connection,
    *,
    rep_id: int | None = None,
    email: str | None = None,
    scope: ColumnElement[bool] | None = None,
) -> RowMapping:
    """One rep (by id or email) with their team's name; NotFound when missing or, with
    ``scope``, out of it."""
    query = select(reps, teams.c.name.label("team")).select_from(
        reps.outerjoin(teams, teams.c.id == reps.c.team_id)
    )
    query = (
        query.where(reps.c.id == rep_id)
        if rep_id is not None
        else query.where(reps.c.email == email)
    )
    if scope is not None:
        query = query.where(scope)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"rep {rep_id if rep_id is not None else email} does not exist")
    return row


def open_loads(connection: Connection, rep_ids: list[int] | None = None) -> dict[int, int]:
    """Open handoffs per rep that count against capacity (assigned or accepted, not yet
    qualified); every rep's, or only ``rep_ids``'."""
    query = (
        select(handoffs.c.rep_id, func.count())
        .where(handoffs.c.status.in_(("assigned", "accepted")), handoffs.c.rep_id.is_not(None))
        .group_by(handoffs.c.rep_id)
    )
    if rep_ids is not None:
        query = query.where(handoffs.c.rep_id.in_(rep_ids))
    return {int(rep_id): int(count) for rep_id, count in connection.execute(query)}


def _absences(
    connection: Connection, rep_ids: list[int] | None = None
) -> dict[int, list[RowMapping]]:
    query = select(rep_absences).order_by(rep_absences.c.starts_at)
    if rep_ids is not None:
        query = query.where(rep_absences.c.rep_id.in_(rep_ids))
    found: dict[int, list[RowMapping]] = {}
    for row in connection.execute(query).mappings():
        found.setdefault(int(row["rep_id"]), []).append(row)
    return found


def _public(row: RowMapping, load: int, absences: list[RowMapping]) -> RepPublic:
    return RepPublic(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        team=row["team"],
        timezone=row["timezone"],
        working_hours=row["working_hours"],
        status=row["status"],
        capacity=row["capacity"],
        weight=row["weight"],
        tags=row["tags"],
        countries=row["countries"],
        regions=row["regions"],
        postal_prefixes=row["postal_prefixes"],
        segments=row["segments"],
        manager_email=row["manager_email"],
        active=row["active"],
        open_handoffs=load,
        absences=[
            AbsencePublic(a["id"], a["starts_at"], a["ends_at"], a["note"]) for a in absences
        ],
    )


def _rep_public(connection: Connection, row: RowMapping) -> RepPublic:
    """One rep with their current load and absences."""
    rep_id = int(row["id"])
    return _public(
        row,
        open_loads(connection, [rep_id]).get(rep_id, 0),
        _absences(connection, [rep_id]).get(rep_id, []),
    )


CLEARABLE = frozenset({"team", "manager_email"})
"""Rep settings that may be set to nothing; every other one always has a value."""


def _values(data: RepCreate | RepUpdate, connection: Connection) -> dict[str, Any]:
    given = data.model_dump(exclude_unset=True)
    cleared = sorted(k for k, v in given.items() if v is None and k not in CLEARABLE)
    if cleared:
        raise ValidationFailed(
            "these settings cannot be cleared, only changed",
            [FieldProblem(k, "cannot be null; give a value") for k in cleared],
        )
    values: dict[str, Any] = {k: v for k, v in given.items() if k not in ("team",)}
    if "team" in given:
        values["team_id"] = _team_id(connection, data.team)
    return values


def create_rep(ctx: Context, data: RepCreate, *, actor: Principal) -> RepPublic:
    """Add a rep (available at once, within their working hours)."""
    allowed(actor, Action.MANAGE_REPS)
    now = ctx.clock.now()
    with ctx.write() as connection:
        values = {
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
            **_values(data, connection),
            "created_at": now,
            "updated_at": now,
        }
        try:
            with connection.begin_nested():
                rep_id = inserted_id(connection.execute(insert(reps).values(**values)))
        except IntegrityError:
            raise Conflict(f"a rep with email {data.email} already exists") from None
        return _public(_rep_row(connection, rep_id=int(rep_id)), 0, [])


def _check_fields(actor: Principal, level: Reach, data: RepUpdate) -> None:
    """Refuse the settings ``level`` may not change (see the module docstring)."""
    if level is Reach.ALL:
        return
    given = data.model_fields_set
    if level is Reach.OWN:
        refused = sorted(given - OWN_PROFILE)
        if refused:
            raise Forbidden(
                f"a rep changes only their own {', '.join(sorted(OWN_PROFILE))}; "
                f"ask your manager to change {', '.join(refused)}"
            )
        return
    refused = sorted(given & WHO_MANAGES)
    if refused:
        raise Forbidden(
            f"only an admin changes who manages a rep ({', '.join(refused)}); "
            f"{actor.name} may change the other settings of their team's reps"
        )


def update_rep(ctx: Context, rep_id: int, data: RepUpdate, *, actor: Principal) -> RepPublic:
    """Change some of a rep's settings: an admin any of them, a manager those of their
    team's reps except who manages them, a rep their own profile."""
    level = allowed(actor, Action.UPDATE_REP)
    with ctx.write() as connection:
        check_rep(connection, actor, Action.UPDATE_REP, rep_id)
        _check_fields(actor, level, data)
        _rep_row(connection, rep_id=rep_id)
        values = _values(data, connection)
        if values:
            connection.execute(
                update(reps)
                .where(reps.c.id == rep_id)
                .values(**values, updated_at=ctx.clock.now(), revision=reps.c.revision + 1)
            )
        return _rep_public(connection, _rep_row(connection, rep_id=rep_id))


def get_rep(ctx: Context, rep_id: int, *, actor: Principal) -> RepPublic:
    """One rep with their load and absences; a rep out of reach is missing."""
    with ctx.read() as connection:
        check_rep(connection, actor, Action.READ_REPS, rep_id)
        return _rep_public(connection, _rep_row(connection, rep_id=rep_id))


def find_rep(ctx: Context, email: str, *, actor: Principal) -> RepPublic:
    """The rep with this email; a rep out of reach is missing, as one that does not
    exist, so emails cannot be probed."""
    level = allowed(actor, Action.READ_REPS)
    scope = None if level is Reach.ALL else rep_scope(actor, level)
    with ctx.read() as connection:
        return _rep_public(
            connection, _rep_row(connection, email=email.strip().lower(), scope=scope)
        )


def list_reps(ctx: Context, *, actor: Principal, team: str | None = None) -> list[RepPublic]:
    """Every rep within reach (a rep: only themselves), by email."""
    level = allowed(actor, Action.READ_REPS)
    with ctx.read() as connection:
        query = (
            select(reps, teams.c.name.label("team"))
            .select_from(reps.outerjoin(teams, teams.c.id == reps.c.team_id))
            .order_by(reps.c.email)
        )
        if team is not None:
            query = query.where(teams.c.name == team)
        if level is not Reach.ALL:
            query = query.where(rep_scope(actor, level))
        rows = connection.execute(query).mappings().all()
        ids = None if level is Reach.ALL else [int(r["id"]) for r in rows]
        loads = open_loads(connection, ids)
        absences = _absences(connection, ids)
        return [_public(r, loads.get(r["id"], 0), absences.get(r["id"], [])) for r in rows]


def add_absence(ctx: Context, rep_id: int, data: AbsenceCreate, *, actor: Principal) -> RepPublic:
    """Record an out-of-office period (the rep's own, or by their manager or an admin)."""
    with ctx.write() as connection:
        check_rep(connection, actor, Action.UPDATE_REP, rep_id)
        _rep_row(connection, rep_id=rep_id)
        connection.execute(
            update(reps)
            .where(reps.c.id == rep_id)
            .values(updated_at=ctx.clock.now(), revision=reps.c.revision + 1)
        )
        connection.execute(
            insert(rep_absences).values(
                rep_id=rep_id,
                starts_at=data.starts_at,
                ends_at=data.ends_at,
                note=data.note,
                created_by=actor.name,
            )
        )
        return _rep_public(connection, _rep_row(connection, rep_id=rep_id))


def remove_absence(ctx: Context, rep_id: int, absence_id: int, *, actor: Principal) -> RepPublic:
    """Cancel an out-of-office period (same rule as :func:`add_absence`)."""
    with ctx.write() as connection:
        check_rep(connection, actor, Action.UPDATE_REP, rep_id)
        gone = connection.execute(
            delete(rep_absences).where(
                rep_absences.c.id == absence_id, rep_absences.c.rep_id == rep_id
            )
        ).rowcount
        if not gone:
            raise NotFound(f"rep {rep_id} has no absence {absence_id}")
        connection.execute(
            update(reps).where(reps.c.id == rep_id).values(revision=reps.c.revision + 1)
        )
        return _rep_public(connection, _rep_row(connection, rep_id=rep_id))


def upsert_account(ctx: Context, data: AccountCreate, *, actor: Principal) -> AccountPublic:
    """Create or update the account of a domain and its owning rep (admins and sales
    managers: account ownership is how sales divides its market). A manager moves only
    accounts between their own reps: the current owner, if any, and the new one must
    both be theirs, or the answer is that the rep does not exist."""
    level = allowed(actor, Action.MANAGE_ACCOUNTS)
    now = ctx.clock.now()
    with ctx.write() as connection:
        owner_id = _rep_row(connection, email=data.owner_email)["id"] if data.owner_email else None
        found = connection.execute(
            select(accounts.c.id, accounts.c.owner_rep_id)
            .where(accounts.c.domain == data.domain)
            .with_for_update()
        ).first()
        existing = None if found is None else found[0]
        if level is not Reach.ALL:
            owners = [owner_id, None if found is None else found[1]]
            for rep_id in {int(r) for r in owners if r is not None}:
                check_rep(connection, actor, Action.MANAGE_ACCOUNTS, rep_id)
        if existing is None:
            account_id = inserted_id(
                connection.execute(
                    insert(accounts).values(
                        domain=data.domain,
                        name=data.name,
                        owner_rep_id=owner_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
            )
        else:
            account_id = existing
            connection.execute(
                update(accounts)
                .where(accounts.c.id == existing)
                .values(name=data.name, owner_rep_id=owner_id, updated_at=now)
            )
    return AccountPublic(int(account_id), data.domain, data.name, data.owner_email)


def list_accounts(ctx: Context, *, actor: Principal) -> list[AccountPublic]:
    """Every account with its owner, by domain; a rep sees only the accounts they own."""
    level = allowed(actor, Action.READ_REPS)
    query = (
        select(accounts.c.id, accounts.c.domain, accounts.c.name, reps.c.email)
        .select_from(accounts.outerjoin(reps, reps.c.id == accounts.c.owner_rep_id))
        .order_by(accounts.c.domain)
    )
    if level is not Reach.ALL:
        query = query.where(rep_scope(actor, level))
    with ctx.read() as connection:
        return [AccountPublic(r.id, r.domain, r.name, r.email) for r in connection.execute(query)]


_ROUTING_CACHE: dict[tuple[Any, ...], list[Rep]] = {}


@lru_cache(maxsize=4096)
def _hours(spec: str) -> WorkingHours:
    return WorkingHours.parse(json.loads(spec))


ROSTER_FINGERPRINT = tuple(
    query.scalar_subquery()
    for query in (
        select(func.count()).select_from(reps),
        select(func.max(reps.c.id)),
        select(func.sum(reps.c.revision)),
        select(func.count()).select_from(rep_absences),
        select(func.max(rep_absences.c.id)),
        select(func.sum(rep_absences.c.id)),
        select(func.count()).select_from(teams),
        select(func.max(teams.c.id)),
        select(func.max(teams.c.manager_email)),
    )
)
"""The roster's fingerprint as columns, for a statement that reads it with more."""
_ROSTER_VERSION = select(*ROSTER_FINGERPRINT)
"""The roster's fingerprint in one statement (one round trip per routing decision)."""


def _roster_version(
    connection: Connection, fingerprint: Sequence[Any] | None = None
) -> tuple[Any, ...]:
    """A fingerprint that changes whenever a rep, a team or an absence changes (every
    change to a rep or their absences bumps ``reps.revision``)."""
    url = connection.engine.url
    if fingerprint is None:
        fingerprint = connection.execute(_ROSTER_VERSION).one()
    return (url.host, url.port, url.database, *fingerprint)


def routing_reps(connection: Connection, fingerprint: Sequence[Any] | None = None) -> list[Rep]:
    """Every rep as routing sees them: schedule with absences, team, patch. Cached per
    roster version, because routing asks for every decision and the roster rarely
    changes. ``fingerprint``: the :data:`ROSTER_FINGERPRINT` columns, when the caller
    read them in this transaction with another statement."""
    version = _roster_version(connection, fingerprint)
    cached = _ROUTING_CACHE.get(version)
    if cached is None:
        cached = _load_routing_reps(connection)
        if len(_ROUTING_CACHE) > 64:
            _ROUTING_CACHE.clear()
        _ROUTING_CACHE[version] = cached
    _LATEST[version[:3]] = cached
    return cached


_LATEST: dict[tuple[Any, ...], list[Rep]] = {}


def last_routing_reps(connection: Connection) -> list[Rep]:
    """The roster :func:`routing_reps` last returned in this process for this
    database, without asking the database (it may be out of date), or a fresh
    :func:`routing_reps` the first time. For a guess that is checked afterwards: the
    routing decision locks the reps this roster names, then reads the current roster
    under the locks and starts again when it names others."""
    url = connection.engine.url
    found = _LATEST.get((url.host, url.port, url.database))
    return found if found is not None else routing_reps(connection)


def _load_routing_reps(connection: Connection) -> list[Rep]:
    absences = _absences(connection)
    found: list[Rep] = []
    for row in connection.execute(
        select(
            reps, teams.c.name.label("team"), teams.c.manager_email.label("team_manager")
        ).select_from(reps.outerjoin(teams, teams.c.id == reps.c.team_id))
    ).mappings():
        schedule = Schedule(
            row["timezone"],
            _hours(json.dumps(row["working_hours"], sort_keys=True)),
            tuple(Absence(a["starts_at"], a["ends_at"]) for a in absences.get(row["id"], [])),
        )
        found.append(
            Rep(
                id=row["id"],
                email=row["email"],
                name=row["name"],
                schedule=schedule,
                team=row["team"],
                tags=frozenset(row["tags"]),
                status=row["status"],
                capacity=row["capacity"],
                weight=row["weight"],
                countries=frozenset(row["countries"]),
                regions=frozenset(row["regions"]),
                postal_prefixes=tuple(row["postal_prefixes"]),
                segments=frozenset(row["segments"]),
                manager_email=row["manager_email"] or row["team_manager"],
                active=row["active"],
            )
        )
    return found


def account_owner(connection: Connection, email_domain: str | None) -> int | None:
    """The rep owning the account of a domain, if any."""
    if not email_domain:
        return None
    owner = connection.execute(
        select(accounts.c.owner_rep_id).where(accounts.c.domain == email_domain)
    ).scalar()
    return int(owner) if owner is not None else None
