"""The handoff contract: the one agreement, signed by marketing and sales, that says
what a qualified lead is and when it is handed over.

A contract is a YAML document validated here into :class:`HandoffContract`. The format
is built to grow: a top-level ``schema_version`` and one section per concern (this
module knows ``scoring``, ``mql`` and ``prep_checklist``; routing, SLA, rejection
reasons and nurture are added by later versions of the format). Unknown keys are errors
with a suggestion, because a misspelled rule that silently does nothing is the worst
kind of contract bug.

The ``raci`` section (who is responsible, accountable, consulted and informed for each
step of the handoff) is optional in the format so that versions stored before it
existed still load (shown as "not agreed"); a contract without it is accepted with a
warning (:func:`contract_warnings`), and a contract with it must cover every step.

Errors from :func:`parse_contract` name the exact path (``scoring.fit[2].when.field``),
say what is wrong and what is allowed.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from baton.domain.activities import ActivityType
from baton.domain.leads import ATTRIBUTION_FIELDS, PROFILE_FIELDS, fold_source
from baton.domain.nurture_rules import (
    DelayBounds,
    NurtureEnroll,
    NurtureSection,
    NurtureSequence,
    NurtureStep,
    NurtureTemplate,
    StepWhen,
    diff_nurture,
    nurture_problems,
)
from baton.domain.suggest import suggest

SCHEMA_VERSION = 1
MAX_CONTRACT_CHARS = 500_000

LEAD_FIELDS: tuple[str, ...] = (
    *PROFILE_FIELDS,
    *ATTRIBUTION_FIELDS,
    "last_source",
    "last_campaign",
    "consent",
    "email_domain",
)
"""Fields a fit rule may test; ``attributes.<key>`` reaches the free-form attributes."""

EmailClass = Literal["free_mail", "disposable", "role", "competitor", "corporate"]
Grade = Literal["A", "B", "C", "D"]
GRADE_ORDER: tuple[Grade, ...] = ("A", "B", "C", "D")


class ContractError(ValueError):
    """A contract that cannot be used, with one line per problem (path: message)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


_T = TypeVar("_T")


def _unique(items: list[_T], key: Callable[[_T], str], problem: str) -> list[_T]:
    """``items`` unchanged, or a ValueError naming the first repeated key."""
    seen: set[str] = set()
    for item in items:
        name = key(item)
        if name in seen:
            raise ValueError(f"{name} {problem}")
        seen.add(name)
    return items


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldCondition(_Strict):
    """A test on one lead field. Exactly one operator: ``equals``, ``in``, ``regex``,
    ``min``/``max`` (a numeric range, either bound optional), ``exists`` (true: has a
    value; false: is missing)."""

    field: str
    equals: str | int | float | bool | None = None
    in_: list[str | int | float] | None = Field(None, alias="in", min_length=1)
    regex: str | None = None
    min: float | None = None
    max: float | None = None
    exists: bool | None = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, value: str) -> str:
        if value.startswith("attributes."):
            if len(value) <= len("attributes."):
                raise ValueError("name the attribute: attributes.<key>")
            return value
        if value not in LEAD_FIELDS:
            raise ValueError(
                f"unknown field '{value}'{suggest(value, LEAD_FIELDS)}; use one of "
                f"{', '.join(LEAD_FIELDS)} or attributes.<key>"
            )
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_operator(self) -> FieldCondition:
        used = [
            name
            for name, value in (
                ("equals", self.equals),
                ("in", self.in_),
                ("regex", self.regex),
                ("min/max", self.min if self.min is not None else self.max),
                ("exists", self.exists),
            )
            if value is not None
        ]
        if len(used) != 1:
            raise ValueError(
                "give exactly one operator: equals, in, regex, min/max or exists"
                + (f" (found {', '.join(used)})" if used else "")
            )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class EmailCondition(_Strict):
    """A test on the class of the lead's email domain."""

    email_domain: EmailClass


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, Mapping):
        if "email_domain" in value:
            return "by_email_domain"
        if "field" in value:
            return "by_field"
        return None
    return "by_email_domain" if isinstance(value, EmailCondition) else "by_field"


Condition = Annotated[
    Annotated[FieldCondition, Tag("by_field")] | Annotated[EmailCondition, Tag("by_email_domain")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message="a condition needs 'field' or 'email_domain'",
    ),
]


class FitRule(_Strict):
    """Points for who the lead is (title, country, company size...). Negative points
    mark a poor fit."""

    name: str | None = None
    when: Condition
    points: int = Field(ge=-1000, le=1000)

    @field_validator("when", mode="before")
    @classmethod
    def _condition_kind(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "field" not in value and "email_domain" not in value:
            keys = ", ".join(map(str, value)) or "nothing"
            raise ValueError(f"a condition needs 'field' or 'email_domain' (found {keys})")
        return value


class PropertyFilter(_Strict):
    """Matches an event property: ``equals``, ``contains`` or ``regex``."""

    equals: str | int | float | bool | None = None
    contains: str | None = None
    regex: str | None = None

    @model_validator(mode="after")
    def _one(self) -> PropertyFilter:
        given = [v for v in (self.equals, self.contains, self.regex) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, contains, regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return self


class EngagementRule(_Strict):
    """Points for what the lead did: an event type, optional property filters (a plain
    value means equals), points per event, an optional cap for the rule, and a
    half-life after which an event counts half."""

    name: str | None = None
    event: ActivityType
    where: dict[str, PropertyFilter] = Field(default_factory=dict)
    points: int = Field(ge=-1000, le=1000)
    cap: int | None = Field(None, ge=0)
    half_life_days: float | None = Field(None, gt=0)

    @field_validator("where", mode="before")
    @classmethod
    def _plain_values_mean_equals(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: v if isinstance(v, Mapping) else {"equals": v} for k, v in value.items()}
        return value


class Grades(_Strict):
    """Minimum fit points for each grade; below ``C`` is ``D``."""

    A: int = 40
    B: int = 25
    C: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        if not self.A >= self.B >= self.C:
            raise ValueError(f"grades must satisfy A >= B >= C (got {self.A}, {self.B}, {self.C})")
        return self


class PredictedScore(_Strict):
    """Points from a learned model: ``weight`` points times the probability the model
    gives the lead (a lead the model is sure of gets the whole weight). ``model`` is
    the version of the model (``baton model list``), signed by both teams like a
    contract; the contract is bound to that version, never to "the latest"."""

    model: int = Field(ge=1)
    weight: int = Field(ge=1, le=1000)
    name: str | None = None


class Scoring(_Strict):
    """Fit rules (who), engagement rules (what they did), an optional learned
    component (``predicted``), grade thresholds, and the domain lists the email-domain
    classes use."""

    fit: list[FitRule] = Field(default_factory=list)
    engagement: list[EngagementRule] = Field(default_factory=list)
    predicted: PredictedScore | None = None
    grades: Grades = Field(default_factory=Grades)
    competitors: list[str] = Field(default_factory=list)
    disposable_domains: list[str] = Field(default_factory=list)

    @field_validator("competitors", "disposable_domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [d.strip().lower() for d in value]


class MqlTrigger(_Strict):
    """The handoff point: a lead becomes an MQL when its total score reaches
    ``threshold`` with every required field present and a grade at least
    ``min_grade``; or at once on a hand-raise event, whatever the score."""

    threshold: int = Field(ge=0)
    min_grade: Grade = "D"
    min_probability: float | None = Field(None, ge=0, le=1)
    """With ``scoring.predicted``: the model's probability must reach this too (on
    score; a hand-raise still qualifies at once)."""
    required_fields: list[str] = Field(default_factory=list)
    hand_raise: list[ActivityType] = Field(default_factory=list)
    hand_raise_max_age_days: float = Field(14, gt=0)
    recycle_cooldown_days: float = Field(30, ge=0)
    live_within_days: float = Field(7, gt=0)
    """An MQL whose qualifying moment is older than this (history imported, a contract
    activated over old leads, a backfilled event) is recorded as history: no live
    handoff, no routing, no email or webhook."""

    @field_validator("required_fields")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.startswith("attributes."):
                if len(name) <= len("attributes."):
                    raise ValueError("name the attribute: attributes.<key>")
            elif name not in LEAD_FIELDS:
                raise ValueError(f"unknown field '{name}'{suggest(name, LEAD_FIELDS)}")
        return value


class PrepItem(_Strict):
    """A readiness item that travels with the lead to sales; ``required`` items must be
    ticked by marketing before the handoff."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=60)
    label: str = Field(min_length=1, max_length=300)
    required: bool = False


class Owners(_Strict):
    """Who answers for the contract on each side."""

    marketing: str
    sales: str


Strategy = Literal["round_robin", "weighted", "least_loaded"]


class Pool(_Strict):
    """Who may receive the leads a routing rule matches: the reps of a ``team``, the
    reps carrying a ``tag``, or named ``reps`` (emails). Exactly one."""

    team: str | None = Field(None, min_length=1, max_length=100)
    tag: str | None = Field(None, min_length=1, max_length=100)
    reps: list[str] | None = Field(None, min_length=1)

    @field_validator("tag")
    @classmethod
    def _lower_tag(cls, value: str | None) -> str | None:
        return value.strip().lower() if value is not None else None

    @field_validator("reps")
    @classmethod
    def _lower_emails(cls, value: list[str] | None) -> list[str] | None:
        return [v.strip().lower() for v in value] if value is not None else None

    @model_validator(mode="after")
    def _exactly_one(self) -> Pool:
        given = [n for n in ("team", "tag", "reps") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of team, tag, reps"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        if self.team is not None:
            return f"team {self.team}"
        if self.tag is not None:
            return f"reps tagged {self.tag}"
        return "reps " + ", ".join(self.reps or ())


class RoutingRule(_Strict):
    """Leads matching every condition (lead fields, score range, grades) go to the
    ``pool``, where ``strategy`` picks one available rep. Rules are tried in order;
    the first that matches decides."""

    name: str = Field(min_length=1, max_length=200)
    when: list[Condition] = Field(default_factory=list)
    min_score: float | None = None
    max_score: float | None = None
    grades: list[Grade] | None = Field(None, min_length=1)
    pool: Pool
    strategy: Strategy = "round_robin"

    @field_validator("when", mode="before")
    @classmethod
    def _conditions_need_a_kind(cls, value: Any) -> Any:
        if isinstance(value, list):
            for item in value:
                if isinstance(item, Mapping) and "field" not in item and "email_domain" not in item:
                    keys = ", ".join(map(str, item)) or "nothing"
                    raise ValueError(f"a condition needs 'field' or 'email_domain' (found {keys})")
        return value


class Routing(_Strict):
    """How an MQL finds its rep. ``account_matching``: a lead whose email domain belongs
    to an account with an owner goes to that owner when the owner can take it."""

    account_matching: bool = True
    rules: list[RoutingRule] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[RoutingRule]) -> list[RoutingRule]:
        return _unique(rules, lambda r: f"rule name '{r.name}'", "is used twice")


SlaAction = Literal["remind", "reassign", "notify_manager"]


class SlaStep(_Strict):
    """One rung of the escalation ladder: ``at_minutes`` after assignment (business
    minutes of the rep when ``sla.business_hours``), if the handoff is not yet
    ``until`` (accepted, or touched), do ``action``."""

    at_minutes: float = Field(gt=0, le=525_600)
    action: SlaAction
    until: Literal["accepted", "touched"] = "accepted"


def _default_ladder() -> list[SlaStep]:
    return [
        SlaStep(at_minutes=20, action="remind"),
        SlaStep(at_minutes=30, action="reassign"),
        SlaStep(at_minutes=30, action="notify_manager"),
    ]


class Sla(_Strict):
    """What sales promises: accept a handoff within ``accept_within_minutes`` and
    first touch the lead within ``first_touch_within_minutes`` of assignment, counted
    in the rep's working hours when ``business_hours``; and what happens otherwise."""

    accept_within_minutes: float = Field(30, gt=0, le=525_600)
    first_touch_within_minutes: float = Field(120, gt=0, le=525_600)
    business_hours: bool = True
    ladder: list[SlaStep] = Field(default_factory=_default_ladder)
    max_reassignments: int = Field(2, ge=0, le=50)


RejectionOutcome = Literal["disqualify", "recycle"]


class RejectionReason(_Strict):
    """Why sales can turn a handoff down. ``outcome`` decides the lead's fate
    (``disqualify`` → disqualified, ``recycle`` → nurture); ``marketing_credit`` says
    whether the lead still counts for marketing."""

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=60)
    label: str = Field(min_length=1, max_length=300)
    outcome: RejectionOutcome
    marketing_credit: bool


class Qualification(_Strict):
    """What sales must record to qualify an accepted lead (SAL → SQL), e.g. budget,
    authority, need, timing."""

    required_fields: list[str] = Field(default_factory=list)

    @field_validator("required_fields")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", name):
                raise ValueError(f"'{name}' is not a field name (lower case, digits, _)")
        return value


class CostEntry(_Strict):
    """Money spent on a ``source`` (optionally one ``campaign`` of it) from ``start`` to
    ``end`` (both days included), for the cost reports. Spend imported with ``baton
    import spend`` for the same source, campaign and days wins over an entry here."""

    source: str = Field(min_length=1, max_length=200)
    campaign: str | None = Field(None, min_length=1, max_length=200)
    start: date
    end: date
    amount: float = Field(ge=0, allow_inf_nan=False)
    currency: str = "USD"

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        code = value.strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise ValueError(f"'{value}' is not a currency; use a three-letter code like EUR")
        return code

    @model_validator(mode="after")
    def _ordered(self) -> CostEntry:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @field_validator("source")
    @classmethod
    def _fold(cls, value: str) -> str:
        # Spend meets leads on their source, which captures case-fold.
        return fold_source(value)

    def describe(self) -> str:
        what = self.source + (f"/{self.campaign}" if self.campaign else "")
        return f"{what} {self.start}..{self.end}"


RaciStep = Literal["scoring", "mql", "routing", "first_touch", "verdict", "recycle", "reporting"]
RACI_STEPS: tuple[RaciStep, ...] = (
    "scoring",
    "mql",
    "routing",
    "first_touch",
    "verdict",
    "recycle",
    "reporting",
)
"""The steps of the handoff a RACI covers, in the order a lead meets them."""

RACI_STEP_LABELS: dict[str, str] = {
    "scoring": "Scoring rules",
    "mql": "MQL (the handoff point)",
    "routing": "Routing",
    "first_touch": "First touch",
    "verdict": "Verdict (accept or reject)",
    "recycle": "Recycle to nurture",
    "reporting": "Reporting",
}

RACI_ROLES: dict[str, str] = {
    "marketing": "Marketing",
    "sales": "Sales",
    "sales_manager": "Sales manager",
    "rep": "Sales rep",
    "admin": "Admin",
    "revenue_lead": "Revenue lead",
}
"""The roles a RACI may name without declaring them; named teams go in ``raci.teams``."""

_PARTY = r"^[a-z0-9][a-z0-9_]*$"


def _as_list(value: Any) -> Any:
    """A single name where a list is expected means a list of one."""
    return [value] if isinstance(value, str) else value


class RaciAssignment(_Strict):
    """Who does one step: ``responsible`` (does the work, at least one),
    ``accountable`` (answers for it, exactly one), ``consulted`` (asked before),
    ``informed`` (told after). Each a role or a team of ``raci.teams``."""

    responsible: list[str]
    accountable: str
    consulted: list[str] = Field(default_factory=list)
    informed: list[str] = Field(default_factory=list)

    @field_validator("responsible", "consulted", "informed", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("accountable", mode="before")
    @classmethod
    def _exactly_one(cls, value: Any) -> Any:
        if isinstance(value, list):
            if len(value) != 1:
                found = f" (found {len(value)}: {', '.join(map(str, value))})" if value else ""
                raise ValueError(f"name exactly one accountable party{found}")
            return value[0]
        return value

    @field_validator("responsible")
    @classmethod
    def _at_least_one(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one responsible party")
        return value

    @field_validator("responsible", "consulted", "informed")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return _unique(value, lambda name: f"'{name}'", "is listed twice")

    def parties(self) -> list[tuple[str, str]]:
        """(letter, party) for every name in this assignment, R, A, C, I in order."""
        return [
            *(("responsible", p) for p in self.responsible),
            ("accountable", self.accountable),
            *(("consulted", p) for p in self.consulted),
            *(("informed", p) for p in self.informed),
        ]


class Raci(_Strict):
    """Who is responsible, accountable, consulted and informed for each step of the
    handoff, so that the split of work is versioned and signed with the rules.
    ``teams`` declares named teams (name: description) beside the built-in roles."""

    teams: dict[str, str] = Field(default_factory=dict)
    scoring: RaciAssignment
    mql: RaciAssignment
    routing: RaciAssignment
    first_touch: RaciAssignment
    verdict: RaciAssignment
    recycle: RaciAssignment
    reporting: RaciAssignment

    @field_validator("teams")
    @classmethod
    def _team_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, label in value.items():
            if not re.fullmatch(_PARTY, name) or len(name) > 60:
                raise ValueError(f"'{name}' is not a team name (lower case, digits, _)")
            if name in RACI_ROLES:
                raise ValueError(f"'{name}' is a role already; give the team another name")
            if not str(label).strip():
                raise ValueError(f"describe team '{name}' in a few words")
        return value

    def step(self, name: str) -> RaciAssignment:
        assignment: RaciAssignment = getattr(self, name)
        return assignment

    def parties(self) -> dict[str, str]:
        """Every name a step may use, with its label."""
        return {**RACI_ROLES, **self.teams}

    def party_label(self, name: str) -> str:
        return self.parties().get(name, name)


def raci_problems(raci: Raci | None) -> list[str]:
    """``raci.<step>.<letter>[i]: unknown ...`` for every name that is neither a role
    nor a declared team, with the closest known name."""
    if raci is None:
        return []
    known = list(raci.parties())
    problems: list[str] = []
    for step in RACI_STEPS:
        assignment = raci.step(step)
        for letter in ("responsible", "accountable", "consulted", "informed"):
            value = getattr(assignment, letter)
            names = [value] if isinstance(value, str) else value
            for index, name in enumerate(names):
                if name not in known:
                    where = f"raci.{step}.{letter}"
                    if not isinstance(value, str):
                        where += f"[{index}]"
                    problems.append(
                        f"{where}: unknown role or team '{_short(name)}'{suggest(name, known)}; "
                        f"use a role ({', '.join(RACI_ROLES)}) or a team declared in raci.teams"
                    )
    return problems


class HandoffContract(_Strict):
    """A whole contract, as both teams sign it."""

    schema_version: Literal[1]
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    owners: Owners | None = None
    scoring: Scoring = Field(default_factory=Scoring)
    mql: MqlTrigger
    prep_checklist: list[PrepItem] = Field(default_factory=list)
    routing: Routing = Field(default_factory=Routing)
    sla: Sla = Field(default_factory=Sla)
    rejection_reasons: list[RejectionReason] = Field(default_factory=list)
    qualification: Qualification = Field(default_factory=Qualification)
    costs: list[CostEntry] = Field(default_factory=list)
    raci: Raci | None = None
    nurture: NurtureSection = Field(default_factory=NurtureSection)

    @field_validator("costs")
    @classmethod
    def _unique_costs(cls, entries: list[CostEntry]) -> list[CostEntry]:
        return _unique(entries, CostEntry.describe, "is listed twice")

    @field_validator("rejection_reasons")
    @classmethod
    def _unique_codes(cls, reasons: list[RejectionReason]) -> list[RejectionReason]:
        return _unique(reasons, lambda r: f"code '{r.code}'", "is used twice")

    def rejection_reason(self, code: str) -> RejectionReason | None:
        return next((r for r in self.rejection_reasons if r.code == code), None)

    @model_validator(mode="after")
    def _probability_needs_a_model(self) -> HandoffContract:
        if self.mql.min_probability is not None and self.scoring.predicted is None:
            raise ValueError(
                "mql.min_probability needs scoring.predicted (the model whose probability "
                "it checks)"
            )
        return self

    @field_validator("prep_checklist")
    @classmethod
    def _unique_prep_ids(cls, items: list[PrepItem]) -> list[PrepItem]:
        return _unique(items, lambda i: f"id '{i.id}'", "is used twice")


RACI_MISSING = (
    "raci: not agreed yet; add a raci section saying who is responsible, accountable, "
    "consulted and informed for each step (see contracts/example.yaml)"
)


def contract_warnings(contract: HandoffContract) -> list[str]:
    """What a contract may leave out but should not (``path: message``)."""
    return [RACI_MISSING] if contract.raci is None else []


def _path(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("by_field", "by_email_domain", "str", "int", "float", "bool"):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "(contract)"


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model whose key sits at ``loc`` (for suggesting a misspelled key)."""
    model: Any = HandoffContract
    skip_key = False
    for part in loc[:-1]:
        if skip_key:
            skip_key = False
            continue
        if isinstance(part, int) or model is None:
            continue
        if model is EngagementRule and part == "where":
            model, skip_key = PropertyFilter, True
            continue
        if model is NurtureSection and part in ("sequences", "templates"):
            model = NurtureSequence if part == "sequences" else NurtureTemplate
            skip_key = True
            continue
        if part in ("by_field", "by_email_domain"):
            model = FieldCondition if part == "by_field" else EmailCondition
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return None
        annotation = field.annotation
        for candidate in (
            CostEntry,
            FitRule,
            EngagementRule,
            Scoring,
            MqlTrigger,
            PrepItem,
            Owners,
            Grades,
            FieldCondition,
            PropertyFilter,
            RoutingRule,
            Routing,
            Pool,
            SlaStep,
            Sla,
            RejectionReason,
            Qualification,
            RaciAssignment,
            Raci,
            NurtureSection,
            DelayBounds,
            NurtureSequence,
            NurtureStep,
            StepWhen,
            NurtureEnroll,
            NurtureTemplate,
        ):
            if candidate is annotation or candidate.__name__ in str(annotation):
                model = candidate
                break
        else:
            model = None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_TYPE_MESSAGES = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}


def explain_errors(error: ValidationError) -> list[str]:
    """One readable line per problem, ``path: message``, deduplicated."""
    lines: list[str] = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        path = _path(loc)
        kind = item["type"]
        message = str(item["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(loc)
            allowed = _allowed_keys(model) if model else []
            message = f"unknown key '{key}'{suggest(key, allowed)}"
            if allowed:
                message += f"; allowed: {', '.join(allowed)}"
        elif kind == "missing":
            message = "is required"
        elif kind == "literal_error" and loc and loc[-1] == "schema_version":
            message = f"unsupported schema_version; this Baton reads version {SCHEMA_VERSION}"
        elif kind == "literal_error":
            value = _short(item.get("input"))
            choices = re.findall(r"'([^']+)'", str((item.get("ctx") or {}).get("expected", "")))
            message = f"'{value}' is not allowed{suggest(value, choices)}; use one of " + ", ".join(
                choices
            )
        elif kind == "enum":
            value = _short(item.get("input"))
            known = [t.value for t in ActivityType]
            message = f"unknown event type '{value}'{suggest(value, known)}"
        if kind in (
            "string_type",
            "int_type",
            "float_type",
            "bool_type",
            "int_parsing",
            "float_parsing",
            "bool_parsing",
            "int_from_float",
        ):
            message = "must be text, a number, or true/false"
            if not any(part in ("str", "int", "float", "bool") for part in loc):
                # Not a union: name the one type this field takes.
                message = _TYPE_MESSAGES.get(kind, message)
        line = f"{path}: {message}"
        if line not in lines:
            lines.append(line)
    return lines


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a contract never needs them, and aliases
    let a few hundred bytes expand into gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            raise yaml.YAMLError(
                f"line {mark.line + 1}, column {mark.column + 1}: not valid here: "
                "aliases (*name) are not allowed in a contract"
            )
        return super().compose_node(parent, index)


def _short(value: Any) -> str:
    return reprlib.repr(value) if not isinstance(value, str) else reprlib.repr(value)[1:-1]


def parse_contract(text: str) -> HandoffContract:
    """Read a contract from YAML text; raises :class:`ContractError` listing every
    problem with its path."""
    if len(text) > MAX_CONTRACT_CHARS:
        raise ContractError([f"(contract): longer than {MAX_CONTRACT_CHARS:,} characters"])
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ContractError([f"{where}not valid YAML: {problem}"]) from None
    except RecursionError:
        raise ContractError(["(contract): nested too deeply"]) from None
    if not isinstance(data, Mapping):
        raise ContractError(["(contract): the file must be a YAML mapping of sections"])
    try:
        contract = HandoffContract.model_validate(data)
    except ValidationError as exc:
        raise ContractError(explain_errors(exc)) from None
    problems = raci_problems(contract.raci)
    problems += nurture_problems(
        contract.nurture, {r.code: r.outcome for r in contract.rejection_reasons}
    )
    if problems:
        raise ContractError(problems)
    return contract


def line_of(text: str, path: str) -> int | None:
    """The line (1-based) of ``text`` where the problem at ``path`` sits
    (``scoring.fit[2].when.field``, or ``line 3, column 5`` from a YAML error): the
    key's own line, or for a missing key the line of the mapping that lacks it. None
    when the text is not YAML or the path names no place in it."""
    if path.startswith("("):
        return None
    found = re.match(r"line (\d+), column \d+", path)
    if found:
        return int(found.group(1))
    if len(text) > MAX_CONTRACT_CHARS:
        return None
    try:
        node = yaml.compose(text, Loader=_NoAliasLoader)
    except (yaml.YAMLError, RecursionError):
        return None
    if node is None:
        return None
    line: int | None = None
    for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path):
        if isinstance(node, yaml.MappingNode) and key:
            match = next((pair for pair in node.value if pair[0].value == key), None)
            if match is None:
                return line if line is not None else node.start_mark.line + 1
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and index:
            position = int(index)
            if position >= len(node.value):
                return line
            node = node.value[position]
            line = node.start_mark.line + 1
        else:
            return line
    return line


@dataclass(frozen=True)
class ContractChange:
    """One difference between two contract versions, in words."""

    section: str
    text: str


def rule_label(rule: FitRule | EngagementRule) -> str:
    """A rule's name, or a plain description of it when unnamed (``title matches
    (?i)vp``, ``page_view where url = /pricing``)."""
    if rule.name:
        return rule.name
    if isinstance(rule, EngagementRule):
        if not rule.where:
            return rule.event.value
        parts = [f"{key} {_filter_text(f)}" for key, f in sorted(rule.where.items())]
        return f"{rule.event.value} where {' and '.join(parts)}"
    condition = rule.when
    if isinstance(condition, EmailCondition):
        return f"email domain is {condition.email_domain.replace('_', ' ')}"
    return f"{condition.field} {_condition_text(condition)}"


def condition_text(condition: FieldCondition | EmailCondition) -> str:
    """A condition in words: ``country in US, CA``, ``email domain is free mail``."""
    if isinstance(condition, EmailCondition):
        return f"email domain is {condition.email_domain.replace('_', ' ')}"
    return f"{condition.field} {_condition_text(condition)}"


def _filter_text(f: PropertyFilter) -> str:
    if f.equals is not None:
        return f"= {f.equals}"
    if f.contains is not None:
        return f"contains {f.contains}"
    return f"matches {f.regex}"


def _condition_text(c: FieldCondition) -> str:
    if c.equals is not None:
        return f"= {c.equals}"
    if c.in_ is not None:
        return f"in {', '.join(map(str, c.in_))}"
    if c.regex is not None:
        return f"matches {c.regex}"
    if c.exists is not None:
        return "is present" if c.exists else "is missing"
    if c.min is not None and c.max is not None:
        return f"between {c.min:g} and {c.max:g}"
    if c.min is not None:
        return f">= {c.min:g}"
    return f"<= {c.max:g}"


def diff_contracts(old: HandoffContract, new: HandoffContract) -> list[ContractChange]:
    """What changed from ``old`` to ``new``, as sentences both teams can read."""
    changes: list[ContractChange] = []

    def labelled(rules: Sequence[Any]) -> dict[str, Any]:
        seen: dict[str, int] = {}
        out: dict[str, Any] = {}
        for rule in rules:
            label = rule_label(rule)
            seen[label] = seen.get(label, 0) + 1
            out[label if seen[label] == 1 else f"{label} (#{seen[label]})"] = rule
        return out

    def compare_rules(section: str, before: Sequence[Any], after: Sequence[Any]) -> None:
        old_by = labelled(before)
        new_by = labelled(after)
        for label, rule in new_by.items():
            if label not in old_by:
                changes.append(ContractChange(section, f"rule added: {label} ({rule.points:+d})"))
            elif old_by[label] != rule:
                was = old_by[label]
                detail = (
                    f"points {was.points:+d} → {rule.points:+d}"
                    if was.points != rule.points
                    else "settings changed"
                )
                changes.append(ContractChange(section, f"rule changed: {label}: {detail}"))
        for label, rule in old_by.items():
            if label not in new_by:
                changes.append(ContractChange(section, f"rule removed: {label} ({rule.points:+d})"))

    compare_rules("scoring.fit", old.scoring.fit, new.scoring.fit)
    compare_rules("scoring.engagement", old.scoring.engagement, new.scoring.engagement)
    for grade in ("A", "B", "C"):
        before, after = getattr(old.scoring.grades, grade), getattr(new.scoring.grades, grade)
        if before != after:
            changes.append(
                ContractChange("scoring.grades", f"grade {grade} from {before} → {after}")
            )
    for name in (
        "threshold",
        "min_grade",
        "recycle_cooldown_days",
        "hand_raise_max_age_days",
        "live_within_days",
    ):
        before, after = getattr(old.mql, name), getattr(new.mql, name)
        if before != after:
            changes.append(ContractChange("mql", f"{name} {before} → {after}"))
    for label, before_list, after_list in (
        ("required field", old.mql.required_fields, new.mql.required_fields),
        (
            "hand-raise event",
            [e.value for e in old.mql.hand_raise],
            [e.value for e in new.mql.hand_raise],
        ),
        ("competitor", old.scoring.competitors, new.scoring.competitors),
        ("disposable domain", old.scoring.disposable_domains, new.scoring.disposable_domains),
    ):
        for value in after_list:
            if value not in before_list:
                changes.append(
                    ContractChange(
                        "mql" if "field" in label or "hand" in label else "scoring",
                        f"{label} added: {value}",
                    )
                )
        for value in before_list:
            if value not in after_list:
                changes.append(
                    ContractChange(
                        "mql" if "field" in label or "hand" in label else "scoring",
                        f"{label} removed: {value}",
                    )
                )
    old_items = {i.id: i for i in old.prep_checklist}
    new_items = {i.id: i for i in new.prep_checklist}
    for item_id in new_items.keys() - old_items.keys():
        changes.append(ContractChange("prep_checklist", f"item added: {new_items[item_id].label}"))
    for item_id in old_items.keys() - new_items.keys():
        changes.append(
            ContractChange("prep_checklist", f"item removed: {old_items[item_id].label}")
        )
    for item_id in sorted(old_items.keys() & new_items.keys()):
        before_item, after_item = old_items[item_id], new_items[item_id]
        if before_item.required != after_item.required:
            now_is = "required" if after_item.required else "optional"
            changes.append(
                ContractChange("prep_checklist", f"item {after_item.label}: now {now_is}")
            )
        if before_item.label != after_item.label:
            changes.append(
                ContractChange(
                    "prep_checklist",
                    f"item relabelled '{before_item.label}' → '{after_item.label}'",
                )
            )
    old_rules = {r.name: r for r in old.routing.rules}
    new_rules = {r.name: r for r in new.routing.rules}
    for name in new_rules.keys() - old_rules.keys():
        rule = new_rules[name]
        changes.append(
            ContractChange(
                "routing", f"rule added: {name} → {rule.pool.describe()} ({rule.strategy})"
            )
        )
    for name in old_rules.keys() - new_rules.keys():
        changes.append(ContractChange("routing", f"rule removed: {name}"))
    for name in sorted(old_rules.keys() & new_rules.keys()):
        before_rule, after_rule = old_rules[name], new_rules[name]
        if before_rule.pool != after_rule.pool:
            changes.append(
                ContractChange(
                    "routing",
                    f"rule {name}: pool {before_rule.pool.describe()} → "
                    f"{after_rule.pool.describe()}",
                )
            )
        if before_rule.strategy != after_rule.strategy:
            changes.append(
                ContractChange(
                    "routing",
                    f"rule {name}: strategy {before_rule.strategy} → {after_rule.strategy}",
                )
            )
        if before_rule.model_dump(exclude={"pool", "strategy"}) != after_rule.model_dump(
            exclude={"pool", "strategy"}
        ):
            changes.append(ContractChange("routing", f"rule {name}: conditions changed"))
    if [r.name for r in old.routing.rules] != [r.name for r in new.routing.rules] and (
        old_rules.keys() == new_rules.keys()
    ):
        changes.append(ContractChange("routing", "rules reordered"))
    if old.routing.account_matching != new.routing.account_matching:
        state = "on" if new.routing.account_matching else "off"
        changes.append(ContractChange("routing", f"account matching turned {state}"))
    for name in (
        "accept_within_minutes",
        "first_touch_within_minutes",
        "business_hours",
        "max_reassignments",
    ):
        before, after = getattr(old.sla, name), getattr(new.sla, name)
        if before != after:
            changes.append(ContractChange("sla", f"{name} {before} → {after}"))
    if old.sla.ladder != new.sla.ladder:
        steps = ", ".join(f"{s.action} at {s.at_minutes:g} min" for s in new.sla.ladder)
        changes.append(ContractChange("sla", f"escalation ladder now: {steps or 'none'}"))
    old_reasons = {r.code: r for r in old.rejection_reasons}
    new_reasons = {r.code: r for r in new.rejection_reasons}
    for code in sorted(new_reasons.keys() - old_reasons.keys()):
        changes.append(ContractChange("rejection_reasons", f"reason added: {code}"))
    for code in sorted(old_reasons.keys() - new_reasons.keys()):
        changes.append(ContractChange("rejection_reasons", f"reason removed: {code}"))
    for code in sorted(old_reasons.keys() & new_reasons.keys()):
        before_reason, after_reason = old_reasons[code], new_reasons[code]
        if before_reason.outcome != after_reason.outcome:
            changes.append(
                ContractChange(
                    "rejection_reasons",
                    f"reason {code}: outcome {before_reason.outcome} → {after_reason.outcome}",
                )
            )
        if before_reason.marketing_credit != after_reason.marketing_credit:
            credit = "credit" if after_reason.marketing_credit else "no credit"
            changes.append(
                ContractChange("rejection_reasons", f"reason {code}: now {credit} for marketing")
            )
    if old.qualification != new.qualification:
        fields = ", ".join(new.qualification.required_fields) or "none"
        changes.append(ContractChange("qualification", f"required fields now: {fields}"))
    old_costs = {e.describe(): e for e in old.costs}
    new_costs = {e.describe(): e for e in new.costs}
    for key in sorted(new_costs.keys() - old_costs.keys()):
        entry = new_costs[key]
        changes.append(
            ContractChange("costs", f"spend added: {key} {entry.amount:,.2f} {entry.currency}")
        )
    for key in sorted(old_costs.keys() - new_costs.keys()):
        changes.append(ContractChange("costs", f"spend removed: {key}"))
    for key in sorted(old_costs.keys() & new_costs.keys()):
        before_cost, after_cost = old_costs[key], new_costs[key]
        if before_cost != after_cost:
            changes.append(
                ContractChange(
                    "costs",
                    f"spend {key}: {before_cost.amount:,.2f} {before_cost.currency} → "
                    f"{after_cost.amount:,.2f} {after_cost.currency}",
                )
            )
    changes.extend(_diff_raci(old.raci, new.raci))
    changes.extend(ContractChange(s, t) for s, t in diff_nurture(old.nurture, new.nurture))
    if old.owners != new.owners:
        changes.append(ContractChange("owners", "owners changed"))
    if old.description != new.description:
        changes.append(ContractChange("description", "description changed"))
    if old.name != new.name:
        changes.append(ContractChange("name", f"renamed '{old.name}' → '{new.name}'"))
    if not changes and old != new:
        changes.append(ContractChange("(contract)", "other settings changed"))
    return changes


def _diff_raci(old: Raci | None, new: Raci | None) -> list[ContractChange]:
    """RACI changes, step by step: who joined or left each letter, and a new
    accountable party."""
    if old is None and new is None:
        return []
    if new is None:
        return [ContractChange("raci", "RACI removed (now not agreed)")]
    if old is None:
        return [ContractChange("raci", f"RACI agreed for {len(RACI_STEPS)} steps")]
    changes: list[ContractChange] = []
    for name in sorted(new.teams.keys() - old.teams.keys()):
        changes.append(ContractChange("raci", f"team added: {name} ({new.teams[name]})"))
    for name in sorted(old.teams.keys() - new.teams.keys()):
        changes.append(ContractChange("raci", f"team removed: {name}"))
    for name in sorted(old.teams.keys() & new.teams.keys()):
        if old.teams[name] != new.teams[name]:
            changes.append(
                ContractChange(
                    "raci", f"team {name} relabelled '{old.teams[name]}' → '{new.teams[name]}'"
                )
            )
    for step in RACI_STEPS:
        before, after = old.step(step), new.step(step)
        if before.accountable != after.accountable:
            changes.append(
                ContractChange(
                    "raci", f"{step}: accountable {before.accountable} → {after.accountable}"
                )
            )
        for letter in ("responsible", "consulted", "informed"):
            was, now = getattr(before, letter), getattr(after, letter)
            added = [p for p in now if p not in was]
            removed = [p for p in was if p not in now]
            if added:
                changes.append(ContractChange("raci", f"{step}: {letter} added {', '.join(added)}"))
            if removed:
                changes.append(
                    ContractChange("raci", f"{step}: {letter} removed {', '.join(removed)}")
                )
    return changes
