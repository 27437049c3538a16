"""Contract use cases: draft, approve, activate, read, compare.

Every version is kept. A version becomes active only after one approver for marketing
and a different one for sales have signed it; exactly one version is active at a time
(activating one supersedes the previous one in the same transaction). Activation then
re-scores every lead in chunks, each its own short transaction, so capture and ingest
are never blocked for the whole run.

Who may do what (see :mod:`baton.domain.access`): everyone signed in reads versions;
marketing and admins draft them; a ``marketing`` user signs for marketing and a
``sales_manager`` for sales (:func:`~baton.domain.access.check_signer`), never the same
user for both sides and never an admin; only an admin activates or re-scores. Each
signature keeps the signer's text name and, for a user or their token, their user id.

Reading the rules in force is :mod:`baton.services.contract_rules`, below scoring, so
that this module may call scoring (activation re-scores) without scoring calling back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from baton.domain.access import Action, Principal, check_signer
from baton.domain.contract import (
    ContractChange,
    ContractError,
    HandoffContract,
    contract_warnings,
    diff_contracts,
    line_of,
    parse_contract,
)
from baton.domain.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from baton.domain.rescores import UnfinishedRescore
from baton.services.access import allowed
from baton.services.context import Context, database_now
from baton.services.contract_rules import active_contract, rules_of
from baton.services.rescore_progress import (
    RescoreNotes,
    begin_rescore_in,
    leads_to_rescore,
    rescore_started_at,
    unfinished_rescore_in,
)
from baton.services.scoring import ActivationReport, rescore_all
from baton.services.signatures import (
    ROLES,
    Role,
    Signatures,
    approvals_of,
    check_role,
    may,
    sign_in,
    signable_sides,
    signatures_in,
)
from baton.store.tables import contract_approvals, contracts, lead_model_approvals, lead_models


@dataclass(frozen=True)
class ContractVersion:
    """One stored version of the contract, with its signatures."""

    version: int
    name: str
    status: str
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    approvals: dict[str, str] = field(default_factory=dict)
    body: str = ""
    spec: HandoffContract | None = None
    """The parsed rules (for reading them in words: the contract page, the RACI)."""
    warnings: tuple[str, ...] = ()
    """What the version leaves out but should not (``path: message``), e.g. no RACI."""
    rescore: UnfinishedRescore | None = None
    """The active version's re-score of every lead, when it has not finished (stopped
    half way, or still running): :mod:`baton.services.rescore_progress`."""


def check_contract(body: str) -> HandoffContract:
    """Parse ``body`` or raise :class:`ValidationFailed` with one problem per line."""
    try:
        return parse_contract(body)
    except ContractError as exc:
        problems = []
        for line in exc.problems:
            path, _, message = line.partition(": ")
            problems.append(FieldProblem(path, message))
        raise ValidationFailed(f"the contract has {len(problems)} problem(s)", problems) from None


def problem_lines(body: str, problems: Sequence[FieldProblem]) -> list[tuple[int | None, str, str]]:
    """``(line, path, message)`` for each problem of a refused draft: the line of
    ``body`` it sits on (None when it has no place), so a page shows it beside the
    text."""
    return [(line_of(body, p.loc), p.loc, p.message) for p in problems]


def _version(connection: Connection, version: int, *, lock: bool = False) -> dict[str, Any]:
    query = select(contracts).where(contracts.c.version == version)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"contract version {version} does not exist")
    return dict(row)


def _signatures(connection: Connection, contract_id: int) -> Signatures:
    """Side -> (signer's name, signer's user id or None) of a version."""
    return signatures_in(
        connection, contract_approvals, contract_approvals.c.contract_id, contract_id
    )


def _approvals(connection: Connection, contract_id: int) -> dict[str, str]:
    return approvals_of(_signatures(connection, contract_id))


def _public(row: dict[str, Any], approvals: dict[str, str]) -> ContractVersion:
    spec = rules_of(row["spec"])
    return ContractVersion(
        version=row["version"],
        name=row["name"],
        status=row["status"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        approvals=approvals,
        body=row["body"],
        spec=spec,
        warnings=tuple(contract_warnings(spec)),
    )


@dataclass(frozen=True)
class VersionActions:
    """What ``actor`` may do to one version now, for offering only those buttons (the
    use cases still decide: a second signature by the same person is refused there)."""

    sign: tuple[Role, ...] = ()
    activate: bool = False


def may_draft(actor: Principal) -> bool:
    """Whether ``actor`` may store a new draft (marketing and admins)."""
    return may(actor, Action.DRAFT_CONTRACT)


def version_actions(version: ContractVersion, *, actor: Principal) -> VersionActions:
    """The sides ``actor`` may still sign ``version`` for, and whether they may activate
    it (both sides signed, not active, an admin)."""
    sign = signable_sides(actor, version.status, version.approvals, Action.SIGN_CONTRACT)
    signed = set(version.approvals) == set(ROLES)
    activate = (
        signed
        and version.status in ("approved", "superseded")
        and may(actor, Action.ACTIVATE_CONTRACT)
    )
    return VersionActions(sign=sign, activate=activate)


def _check_model_exists(connection: Connection, spec: HandoffContract) -> None:
    """A draft's ``scoring.predicted.model`` must name a stored model version."""
    component = spec.scoring.predicted
    if component is None:
        return
    found = connection.execute(
        select(lead_models.c.id).where(lead_models.c.version == component.model)
    ).first()
    if found is None:
        raise ValidationFailed(
            "the contract names a model that does not exist",
            [
                FieldProblem(
                    "scoring.predicted.model",
                    f"model version {component.model} does not exist; see baton model list",
                )
            ],
        )


def _check_model_signed(connection: Connection, version: int, spec: HandoffContract) -> None:
    """A contract activated with a ``predicted`` component needs its model signed by
    both teams (a model changes who is handed off): approved, active, or superseded
    after both had signed."""
    component = spec.scoring.predicted
    if component is None:
        return
    model = connection.execute(
        select(lead_models.c.id, lead_models.c.status).where(
            lead_models.c.version == component.model
        )
    ).first()
    if model is None:
        raise Conflict(
            f"version {version} uses model v{component.model}, which does not exist; "
            "see baton model list"
        )
    sides = set(
        connection.execute(
            select(lead_model_approvals.c.role).where(lead_model_approvals.c.model_id == model[0])
        ).scalars()
    )
    missing = [side for side in ROLES if side not in sides]
    if missing or model[1] not in ("approved", "active", "superseded"):
        state = f"not signed by {' and '.join(missing)}" if missing else str(model[1])
        raise Conflict(
            f"version {version} uses model v{component.model}, which is {state}: both "
            "teams sign a model before a contract may use it (baton model approve)"
        )


def create_contract(ctx: Context, body: str, *, actor: Principal) -> ContractVersion:
    """Store a new draft version (the next number). A contract without a ``raci``
    section is stored, with a warning on the version (a RACI is agreed by the same
    signatures, so a team may draft the rules first)."""
    allowed(actor, Action.DRAFT_CONTRACT)
    spec = check_contract(body)
    now = ctx.clock.now()
    with ctx.write() as connection:
        _check_model_exists(connection, spec)
        latest = connection.execute(select(func.max(contracts.c.version))).scalar()
        version = (latest or 0) + 1
        connection.execute(
            insert(contracts).values(
                version=version,
                name=spec.name,
                body=body,
                spec=spec.model_dump(mode="json", by_alias=True),
                status="draft",
                created_by=actor.name,
                created_at=now,
            )
        )
        return _public(_version(connection, version), {})


def approve_contract(
    ctx: Context, version: int, *, role: Role, actor: Principal
) -> ContractVersion:
    """Sign a draft for one side. A ``marketing`` user signs for marketing and a
    ``sales_manager`` for sales, and the two sides need two different people (the same
    user id, or for the local operator the same name, cannot sign both); an admin
    never signs. A version signed by both is ``approved`` and can be activated."""
    check_role(role)
    allowed(actor, Action.SIGN_CONTRACT)
    check_signer(actor, role)
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = _version(connection, version, lock=True)
        approvals = sign_in(
            connection,
            contracts,
            contract_approvals,
            "contract_id",
            row,
            role=role,
            actor=actor,
            now=now,
            subject=f"version {version}",
        )
        return _public(row, approvals)


def get_contract(ctx: Context, version: int, *, actor: Principal) -> ContractVersion:
    """One version with its signatures."""
    allowed(actor, Action.READ_CONTRACTS)
    with ctx.read() as connection:
        row = _version(connection, version)
        found = _public(row, _approvals(connection, row["id"]))
        return _with_rescore(connection, [found], now=database_now(ctx, connection))[0]


def list_contracts(ctx: Context, *, actor: Principal) -> list[ContractVersion]:
    """Every version, newest first."""
    allowed(actor, Action.READ_CONTRACTS)
    with ctx.read() as connection:
        rows = connection.execute(select(contracts).order_by(contracts.c.version.desc()))
        found = [_public(dict(r), _approvals(connection, r["id"])) for r in rows.mappings().all()]
        return _with_rescore(connection, found, now=database_now(ctx, connection))


def _with_rescore(
    connection: Connection, versions: list[ContractVersion], *, now: datetime
) -> list[ContractVersion]:
    """``versions``, the active one marked with its re-score when that is unfinished."""
    if not any(v.status == "active" for v in versions):
        return versions
    rescore = unfinished_rescore_in(connection, now=now)
    if rescore is None:
        return versions
    return [replace(v, rescore=rescore) if v.version == rescore.version else v for v in versions]


def diff_versions(ctx: Context, old: int, new: int, *, actor: Principal) -> list[ContractChange]:
    """What changed between two stored versions, in words."""
    allowed(actor, Action.READ_CONTRACTS)
    with ctx.read() as connection:
        before = rules_of(_version(connection, old)["spec"])
        after = rules_of(_version(connection, new)["spec"])
    return diff_contracts(before, after)


def activate_contract(
    ctx: Context,
    version: int,
    *,
    actor: Principal,
    progress: Callable[[int, int], None] | None = None,
    watch: Callable[[ActivationReport, int], None] | None = None,
) -> ActivationReport:
    """Make an approved version the active one, then re-score every lead with it.
    Only an admin (or the local operator) activates: it changes every lead's score and
    may hand many of them to sales at once. A lead whose qualifying moment (its last
    activity or stage change) is older than the contract's ``mql.live_within_days`` is
    recorded as an MQL of the past and opens no handoff (``held_back`` in the report):
    activating a contract over old history never fires live work.

    ``progress(done, total)`` is called after each chunk of leads, and ``watch(report,
    total)`` with the report so far (the MQLs so far, for a progress line). Until every
    lead is re-scored, the version is marked as such (:func:`begin_rescore_in`, in the
    transaction that activates it)."""
    allowed(actor, Action.ACTIVATE_CONTRACT)
    now = ctx.clock.now()
    with ctx.read() as connection:  # a refusal answers before the count of every lead
        _check_activatable(connection, version, _version(connection, version))
    total = leads_to_rescore(ctx)
    try:
        with ctx.write() as connection:
            row = _version(connection, version, lock=True)
            _check_activatable(connection, version, row)
            # What this activation supersedes is what its UPDATE changed: a version read
            # before it (locked or not) may have been superseded meanwhile by another
            # activation, whose version this statement then supersedes instead
            # (PostgreSQL's READ COMMITTED reads each statement afresh).
            previous = connection.execute(
                update(contracts)
                .where(contracts.c.status == "active")
                .values(status="superseded", superseded_at=now)
                .returning(contracts.c.version)
            ).scalar()
            connection.execute(
                update(contracts)
                .where(contracts.c.id == row["id"])
                .values(status="active", activated_at=now, activated_by=actor.name)
            )
            started_at = begin_rescore_in(ctx, connection, version, total=total)
    except IntegrityError as exc:
        # Another activation committed first: one active version (migration 0029's
        # index, named by PostgreSQL, its column by SQLite).
        said = str(exc.orig)
        if "uq_contracts_one_active" not in said and "contracts.status" not in said:
            raise
        winner = active_contract(ctx)
        won = winner[0] if winner else None
        raise Conflict(
            f"version {won} was activated at the same moment; nothing was saved: "
            f"activate version {version} again if it should replace it"
        ) from None
    report = ActivationReport(version=version, previous=previous)
    _rescore_noted(ctx, report, started_at=started_at, actor=actor, progress=progress, watch=watch)
    return report


def _check_activatable(connection: Connection, version: int, row: dict[str, Any]) -> None:
    """Refuse (:class:`Conflict`) to activate ``version`` (its ``row``) unless it is
    approved, or superseded and signed by both sides, and its model signed: checked in
    a read before the leads are counted, and again in the activation's write."""
    if row["status"] == "active":
        raise Conflict(
            f"version {version} is already active (to finish an interrupted re-score, "
            "run `baton contract rescore`)"
        )
    signed = set(_approvals(connection, row["id"])) == set(ROLES)
    if row["status"] == "superseded" and not signed:
        raise Conflict(f"version {version} was superseded and is not signed by both sides")
    if row["status"] not in ("approved", "superseded"):
        missing = [r for r in ROLES if r not in _approvals(connection, row["id"])]
        raise Conflict(
            f"version {version} is {row['status']}: it needs approval by "
            f"{' and '.join(missing) or 'both sides'} before activation"
        )
    _check_model_signed(connection, version, rules_of(row["spec"]))


def _rescore_noted(
    ctx: Context,
    report: ActivationReport,
    *,
    started_at: datetime | None,
    actor: Principal,
    progress: Callable[[int, int], None] | None,
    watch: Callable[[ActivationReport, int], None] | None,
) -> None:
    """:func:`rescore_all`, its progress noted as it goes and its version's mark of an
    unfinished re-score removed at the end (:mod:`baton.services.rescore_progress`);
    one that stops (an error, Ctrl+C) leaves the mark, with how far it got."""
    with RescoreNotes(ctx, report, started_at=started_at, progress=progress, watch=watch) as notes:
        try:
            rescore_all(ctx, report, actor=actor, progress=notes)
        except BaseException:
            notes.stopped()
            raise
        notes.finished()


def rescore_active(
    ctx: Context,
    *,
    actor: Principal,
    progress: Callable[[int, int], None] | None = None,
    watch: Callable[[ActivationReport, int], None] | None = None,
) -> ActivationReport:
    """Re-score every lead with the active version again (after an interrupted
    activation, or to bring decayed scores up to date); crossings are counted against
    the same version. Finishing an activation is the activator's right, so it needs
    the same rule as :func:`activate_contract`. Its end removes the version's mark of an
    unfinished re-score (:mod:`baton.services.rescore_progress`)."""
    allowed(actor, Action.ACTIVATE_CONTRACT)
    active = active_contract(ctx)
    if active is None:
        raise NotFound("no contract is active yet")
    report = ActivationReport(version=active[0], previous=active[0])
    started_at = rescore_started_at(ctx, active[0])
    _rescore_noted(ctx, report, started_at=started_at, actor=actor, progress=progress, watch=watch)
    return report
