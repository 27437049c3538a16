"""Who may do what: roles, the acting principal, and the one table of access rules.

Every use case receives the acting :class:`Principal` and asks :func:`reach` before it
reads or writes. Routes and pages only authenticate (turn a cookie, a token or an
intake key into a principal); they never decide who may do what, so the CLI, the
worker, the API and the web app all obey the same table.

A rule says, per role, how far an action reaches:

* ``ALL``: any object;
* ``TEAM``: objects of the reps the principal manages (their teams' reps, or reps whose
  manager is the principal), plus unassigned (queued) handoffs;
* ``OWN``: objects of the principal's own rep record (their handoffs, the leads in
  them, their own profile).

The object-level half (is *this* handoff in reach?) is SQL in
:mod:`baton.services.access`: an object out of reach is reported as missing (404), never
as forbidden, so ids cannot be probed (OWASP API1).

Tokens carry scopes: a token acts only within its scopes *and* its owner's role, so it
never grants more than the person who made it. Intake keys may only create leads and
activities. The local operator (the CLI on the server) and the system (the worker) are
trusted: whoever runs them already holds the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final, Literal

from baton.domain.errors import Forbidden


class Role(StrEnum):
    """What a person does in the handoff, which decides what they may do in Baton."""

    ADMIN = "admin"
    MARKETING = "marketing"
    SALES_MANAGER = "sales_manager"
    REP = "rep"


class Reach(IntEnum):
    """How far an allowed action reaches (larger reaches further)."""

    OWN = 1
    TEAM = 2
    ALL = 3


class Action(StrEnum):
    """Everything a principal can ask Baton to do, in the users' words."""

    CAPTURE_LEAD = "capture a lead"
    READ_LEADS = "read leads"
    CHANGE_STAGE = "change a lead's stage by hand"
    ANNOTATE_LEAD = "note, tag or tick the prep list of a lead"
    MERGE_LEADS = "merge or review duplicate leads"
    INGEST_ACTIVITY = "record activities"
    READ_CONTRACTS = "read contracts"
    DRAFT_CONTRACT = "draft a contract version"
    SIGN_CONTRACT = "sign a contract version"
    ACTIVATE_CONTRACT = "activate a signed contract version"
    READ_REPS = "read teams, reps and accounts"
    MANAGE_REPS = "create teams and reps"
    UPDATE_REP = "change a rep's profile or out-of-office"
    MANAGE_ACCOUNTS = "assign accounts to reps"
    READ_HANDOFFS = "read handoffs and their packets"
    READ_QUEUE = "read the unassigned queue"
    GIVE_VERDICT = "accept, reject, touch, qualify, win or lose a handoff"
    REASSIGN = "reassign a handoff"
    READ_REPORTS = "read reports and spend"
    IMPORT_SPEND = "import marketing spend"
    MANAGE_WEBHOOKS = "manage webhooks and read their deliveries"
    MANAGE_OUTBOX = "read and retry the outbox (email and webhook deliveries)"
    MANAGE_USERS = "manage users, intake keys and others' tokens"
    MANAGE_CHANNELS = "manage a rep's or a team's chat channels and notification choices"
    OWN_TOKENS = "create and revoke one's own API tokens"
    MANAGE_INTAKE = "add and change inbound endpoints (/hooks/...) and retry their requests"
    VIEW_INTAKE_LOG = "read the intake log (raw inbound requests, with personal data)"
    READ_NURTURE = "read nurture enrollments and preview nurture email"
    MANAGE_NURTURE = "enroll leads in nurture sequences and end enrollments"
    MANAGE_PERSONAL_DATA = "export or erase a person's data (data subject requests)"
    READ_MODELS = "read learned scoring models and their evaluations"
    TRAIN_MODEL = "train a scoring model (a draft) or suggest a contract from history"
    SIGN_MODEL = "sign a scoring model version"
    ACTIVATE_MODEL = "activate a signed scoring model version"
    RUN_BACKTEST = "backtest a contract on the recorded history"
    PLAN_CAPACITY = "plan the reps needed to meet the SLA"
    READ_STATUS = "read how the deployment is doing (queue depths and ages, workers)"


SCOPES: Final[dict[str, str]] = {
    "leads:read": "read leads, their timeline, score and prep list",
    "leads:write": "capture leads, change stages, notes, tags, prep, merges",
    "activities:write": "record activities",
    "handoffs:read": "read handoffs, packets and the queue",
    "handoffs:verdict": "accept, reject, touch, qualify, win, lose, assign, reassign",
    "contracts:read": "read contract versions",
    "contracts:write": "draft, sign and activate contract versions",
    "reps:read": "read teams, reps and accounts",
    "reps:write": "change teams, reps, absences and accounts",
    "reports:read": "read reports and spend",
    "spend:write": "import marketing spend",
    "webhooks:write": "manage webhooks; read and retry the outbox",
    "tokens:write": "create and revoke API tokens",
    "intake:read": "read the intake log of inbound endpoints",
    "intake:write": "manage inbound endpoints and retry their requests",
    "nurture:read": "read nurture enrollments; preview nurture email",
    "nurture:write": "enroll leads in nurture sequences and end enrollments",
    "models:read": "read scoring models; backtest contracts; plan capacity",
    "models:write": "train, sign and activate scoring models; suggest contracts",
    "status:read": "read how the deployment is doing: queue depths and ages, workers",
    "admin": "every scope (still limited by the owner's role)",
}
"""Token scopes and what each lets a program do."""

ADMIN_SCOPE: Final = "admin"

ALL, TEAM, OWN = Reach.ALL, Reach.TEAM, Reach.OWN
ADM, MKT, MGR, REP = Role.ADMIN, Role.MARKETING, Role.SALES_MANAGER, Role.REP


@dataclass(frozen=True)
class Rule:
    """Which roles may take an action and how far; the token scope it needs; whether
    an intake key may take it."""

    scope: str
    roles: Mapping[Role, Reach]
    intake: bool = False


RULES: Final[dict[Action, Rule]] = {
    # action: Rule(token scope, {role: how far}, intake keys allowed?)
    Action.CAPTURE_LEAD: Rule("leads:write", {ADM: ALL, MKT: ALL}, intake=True),
    Action.READ_LEADS: Rule("leads:read", {ADM: ALL, MKT: ALL, MGR: TEAM, REP: OWN}),
    Action.CHANGE_STAGE: Rule("leads:write", {ADM: ALL, MKT: ALL, MGR: TEAM}),
    Action.ANNOTATE_LEAD: Rule("leads:write", {ADM: ALL, MKT: ALL, MGR: TEAM, REP: OWN}),
    Action.MERGE_LEADS: Rule("leads:write", {ADM: ALL, MKT: ALL}),
    Action.INGEST_ACTIVITY: Rule("activities:write", {ADM: ALL, MKT: ALL}, intake=True),
    Action.READ_CONTRACTS: Rule("contracts:read", {ADM: ALL, MKT: ALL, MGR: ALL, REP: ALL}),
    Action.DRAFT_CONTRACT: Rule("contracts:write", {ADM: ALL, MKT: ALL}),
    Action.SIGN_CONTRACT: Rule("contracts:write", {MKT: ALL, MGR: ALL}),
    Action.ACTIVATE_CONTRACT: Rule("contracts:write", {ADM: ALL}),
    Action.READ_REPS: Rule("reps:read", {ADM: ALL, MKT: ALL, MGR: ALL, REP: OWN}),
    Action.MANAGE_REPS: Rule("reps:write", {ADM: ALL}),
    Action.UPDATE_REP: Rule("reps:write", {ADM: ALL, MGR: TEAM, REP: OWN}),
    Action.MANAGE_ACCOUNTS: Rule("reps:write", {ADM: ALL, MGR: TEAM}),
    Action.READ_HANDOFFS: Rule("handoffs:read", {ADM: ALL, MKT: ALL, MGR: TEAM, REP: OWN}),
    Action.READ_QUEUE: Rule("handoffs:read", {ADM: ALL, MGR: TEAM}),
    Action.GIVE_VERDICT: Rule("handoffs:verdict", {ADM: ALL, MGR: TEAM, REP: OWN}),
    Action.REASSIGN: Rule("handoffs:verdict", {ADM: ALL, MGR: TEAM}),
    Action.READ_REPORTS: Rule("reports:read", {ADM: ALL, MKT: ALL, MGR: ALL}),
    Action.IMPORT_SPEND: Rule("spend:write", {ADM: ALL, MKT: ALL}),
    Action.MANAGE_WEBHOOKS: Rule("webhooks:write", {ADM: ALL}),
    Action.MANAGE_OUTBOX: Rule("webhooks:write", {ADM: ALL}),
    Action.MANAGE_USERS: Rule(ADMIN_SCOPE, {ADM: ALL}),
    Action.MANAGE_CHANNELS: Rule("reps:write", {ADM: ALL, MGR: TEAM, REP: OWN}),
    Action.OWN_TOKENS: Rule("tokens:write", {ADM: ALL, MKT: OWN, MGR: OWN, REP: OWN}),
    Action.MANAGE_INTAKE: Rule("intake:write", {ADM: ALL, MKT: ALL}),
    Action.VIEW_INTAKE_LOG: Rule("intake:read", {ADM: ALL, MKT: ALL}),
    Action.READ_NURTURE: Rule("nurture:read", {ADM: ALL, MKT: ALL}),
    Action.MANAGE_NURTURE: Rule("nurture:write", {ADM: ALL, MKT: ALL}),
    Action.MANAGE_PERSONAL_DATA: Rule(ADMIN_SCOPE, {ADM: ALL}),
    Action.READ_MODELS: Rule("models:read", {ADM: ALL, MKT: ALL, MGR: ALL}),
    Action.TRAIN_MODEL: Rule("models:write", {ADM: ALL, MKT: ALL}),
    Action.SIGN_MODEL: Rule("models:write", {MKT: ALL, MGR: ALL}),
    Action.ACTIVATE_MODEL: Rule("models:write", {ADM: ALL}),
    Action.RUN_BACKTEST: Rule("models:read", {ADM: ALL, MKT: ALL, MGR: ALL}),
    Action.PLAN_CAPACITY: Rule("models:read", {ADM: ALL, MKT: ALL, MGR: ALL}),
    Action.READ_STATUS: Rule("status:read", {ADM: ALL}),
}
"""The access rules, one line per action. A role missing from a line may not take it."""

CONTRACT_SIGNERS: Final[dict[str, Role]] = {
    "marketing": Role.MARKETING,
    "sales": Role.SALES_MANAGER,
}
"""Which role signs a contract version for which side."""

PrincipalKind = Literal["user", "token", "intake_key", "operator", "system"]


@dataclass(frozen=True)
class Principal:
    """Who is acting: a person (session), a program (API token), a public form (intake
    key), the local operator (CLI) or the system (worker).

    ``name`` is the text stored as the actor of every change; ``user_id`` is stored
    beside it when a user (or their token) acts."""

    kind: PrincipalKind
    name: str
    role: Role | None = None
    user_id: int | None = None
    email: str | None = None
    rep_id: int | None = None
    team_ids: frozenset[int] = frozenset()
    scopes: frozenset[str] | None = None
    source: str | None = None
    key_id: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def trusted(self) -> bool:
        """The CLI operator and the worker act with every right."""
        return self.kind in ("operator", "system")


def operator(name: str = "cli") -> Principal:
    """The local operator: someone running the CLI on the server, recorded by name."""
    return Principal(kind="operator", name=name)


def system(name: str = "baton") -> Principal:
    """Baton itself (the worker, the demo's generator): every right, never a person."""
    return Principal(kind="system", name=name)


INTAKE_REFUSED_TYPES = frozenset({"unsubscribe"})
"""Activity types a public intake key may not record: an unsubscribe comes from the
unsubscribe link or the email platform (with an API token); from a page anyone can
read, it would only lower the score of whoever's address the sender knows."""
INTAKE_REFUSED_TYPE = (
    "an intake key records what a visitor did; an unsubscribe comes from the unsubscribe "
    "link or the email platform (send it with an API token)"
)

INTAKE_BY_EMAIL = "an intake key names the lead by email, never by id"
"""Why an intake key's capture or activity naming a lead by an id is refused: a public
key must not learn which leads exist, nor add to or fill a lead it names by an id."""


def reach(principal: Principal, action: Action) -> Reach:
    """How far ``principal`` may take ``action``; raises :class:`Forbidden` with the
    reason when it may not at all."""
    if principal.trusted:
        return Reach.ALL
    rule = RULES[action]
    if principal.kind == "intake_key":
        if rule.intake:
            return Reach.ALL
        raise Forbidden(f"an intake key may only capture leads and activities, not {action}")
    if principal.role is None or principal.role not in rule.roles:
        who = principal.role.value if principal.role else principal.kind
        raise Forbidden(f"the {who} role may not {action}")
    if principal.scopes is not None and not (
        rule.scope in principal.scopes or ADMIN_SCOPE in principal.scopes
    ):
        raise Forbidden(f"this token lacks the scope '{rule.scope}' needed to {action}")
    return rule.roles[principal.role]


def scopes_unusable_by(role: Role, scopes: Iterable[str]) -> list[str]:
    """The scopes in ``scopes`` that a token acting as ``role`` can never use: no rule
    of that scope lets the role act (``status:read`` for a rep). A token never grants
    more than its user's role, so such a scope is dead weight, and a sign of a mistake
    (the wrong ``--user``) worth telling whoever makes the token."""
    usable = {rule.scope for rule in RULES.values() if role in rule.roles}
    return [s for s in scopes if s != ADMIN_SCOPE and s not in usable]


def check_signer(principal: Principal, side: str) -> None:
    """A contract side is signed by a person of that side's role, never by an admin
    alone (a trusted operator signs in the name it gives)."""
    if principal.trusted:
        return
    needed = CONTRACT_SIGNERS.get(side)
    if needed is None:
        raise Forbidden(f"no one signs for '{side}'")
    if principal.role is not needed:
        raise Forbidden(f"only a {needed.value} user signs for {side}")
