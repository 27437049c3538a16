"""History: changes that happened before Baton heard of them, and the rules they obey.

A stage change, a verdict or a lead's creation may carry the moment it really happened
(``occurred_at``). Such a moment is never in the future (beyond the clock skew an event
may have), never before the lead existed, and never before the lead's previous
transition: history is appended in order, so the lifecycle replays as it is stored.
An API call out of order is refused (422 naming ``occurred_at``); an import holds the
row's out-of-order steps back and says so (see :func:`plan_history`).

History never fires live work: an MQL whose moment is older than the contract's
``mql.live_within_days`` (or that came with an import marked historical) is recorded
and opens no handoff, routes nothing, sends nothing (:func:`is_live`).

The CRM vocabulary (HubSpot lifecycle and deal stages, Salesforce lead statuses and
opportunity stages) and the built-in column mappings of their standard exports are here
too, as plain data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.lifecycle import FUNNEL, Stage, can_transition

MAX_FUTURE_SKEW = timedelta(minutes=10)
"""How far ahead of the clock a given moment may be (clocks differ a little)."""

DEFAULT_LIVE_WITHIN_DAYS = 7.0
"""``mql.live_within_days`` when no contract is active."""


def check_occurred_at(
    at: datetime,
    *,
    now: datetime,
    created_at: datetime | None,
    previous_at: datetime | None,
    field_name: str = "occurred_at",
) -> None:
    """Refuse a moment in the future, before the lead existed, or before the lead's
    previous transition (history is appended in order)."""
    if at.tzinfo is None:
        problem = "give a time zone (for example 2026-03-02T14:05:00Z)"
    elif not _in_range(at):
        problem = f"{at.isoformat()} is not a moment Baton can store (years 1900 to 9998)"
    elif at > now + MAX_FUTURE_SKEW:
        problem = f"{at.isoformat()} is in the future (the clock says {now.isoformat()})"
    elif created_at is not None and at < created_at:
        problem = f"{at.isoformat()} is before the lead existed (created {created_at.isoformat()})"
    elif previous_at is not None and at < previous_at:
        problem = (
            f"{at.isoformat()} is before the lead's previous stage change "
            f"({previous_at.isoformat()}): history is recorded in order"
        )
    else:
        return
    raise ValidationFailed(problem, [FieldProblem(field_name, problem)])


def _in_range(at: datetime) -> bool:
    try:
        return 1900 <= at.astimezone(UTC).year <= 9998
    except (OverflowError, ValueError):
        return False


def is_live(at: datetime, *, now: datetime, live_within_days: float, historical: bool) -> bool:
    """Whether a stage change at ``at`` may set off live work (a handoff, routing,
    email, webhooks): not when marked historical, nor when older than the window."""
    return not historical and now - at <= timedelta(days=live_within_days)


# --- planning an imported row's history ------------------------------------------------------

OUTCOMES = ("won", "lost", "disqualified")


@dataclass(frozen=True)
class Step:
    """One stage change of an imported history: ``implied`` when the file did not give
    it but the lifecycle needs it on the way (an SQL between a SAL and an opportunity),
    dated with the next stage the file gives."""

    stage: Stage
    at: datetime
    implied: bool = False
    deal_value: float | None = None


@dataclass
class Plan:
    """What to record for one lead: the steps in order, and what was held back."""

    steps: list[Step] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    """Steps whose date was before the previous one (out of order in the source):
    recorded at the previous step's moment, so the history stays in order."""
    already_recorded: int = 0
    """Steps left out because the lead has them already (a re-import), implied ones
    and the outcome's included."""


_MAIN = {stage: i for i, stage in enumerate(FUNNEL)}
_SIDE = (Stage.NURTURE, Stage.DISQUALIFIED, Stage.LOST)


def plan_history(
    *,
    current: Stage,
    current_at: datetime,
    dates: Mapping[Stage, datetime],
    outcome: str | None = None,
    outcome_at: datetime | None = None,
    deal_value: float | None = None,
    known: set[tuple[str, datetime]] | frozenset[tuple[str, datetime]] = frozenset(),
) -> Plan:
    """The stage changes that bring a lead from ``current`` (since ``current_at``)
    through the funnel stages of ``dates`` (stage -> when it was reached) to its
    ``outcome`` (``won``: customer, ``lost``, ``disqualified``) at ``outcome_at``.

    Funnel stages the file skips are implied on the way, at the moment of the next
    stage given; a date earlier than the step before it is moved up to that step's
    moment (listed in ``moved``). Steps already recorded (``known``: (stage, moment)
    pairs of the lead's transitions) are left out, so a re-import records nothing twice;
    steps the lead cannot take from where it is (it went further in Baton since) are
    held back with the reason."""
    plan = Plan()
    wanted: list[tuple[Stage, datetime | None]] = sorted(
        ((s, at) for s, at in dates.items() if s in _MAIN and s != Stage.LEAD),
        key=lambda item: _MAIN[item[0]],
    )
    end: Stage | None = None
    if outcome == "won":
        if not any(s == Stage.CUSTOMER for s, _ in wanted):
            wanted.append((Stage.CUSTOMER, outcome_at))
        else:
            wanted = [(s, outcome_at or at) if s == Stage.CUSTOMER else (s, at) for s, at in wanted]
    elif outcome in ("lost", "disqualified"):
        end = Stage.LOST if outcome == "lost" else Stage.DISQUALIFIED
    if not wanted and end is None:
        return plan
    # Fill the main line from the first stage given to the last: each missing stage
    # is dated with the next one given.
    filled: list[tuple[Stage, datetime | None, bool]] = []
    if wanted:
        top = _MAIN[wanted[-1][0]]
        given = dict(wanted)
        for stage in FUNNEL[1 : top + 1]:
            if stage in given:
                filled.append((stage, given[stage], False))
            else:
                filled.append((stage, None, True))
        # Implied stages take the moment of the next stage that has one.
        moment: datetime | None = None
        for i in range(len(filled) - 1, -1, -1):
            stage, at, implied = filled[i]
            if at is None:
                filled[i] = (stage, moment, implied)
            else:
                moment = at
    if end is not None:
        # lost: only from sal, sql or opportunity; disqualified: from lead, mql, sal.
        at_end = outcome_at or (filled[-1][1] if filled else None)
        if end == Stage.LOST and not filled:
            filled = [(Stage.MQL, at_end, True), (Stage.SAL, at_end, True)]
        elif end == Stage.LOST and _MAIN[filled[-1][0]] < _MAIN[Stage.SAL]:
            filled.append((Stage.SAL, at_end, True))
        filled.append((end, at_end, False))
    stage_now, previous = current, current_at
    started = False
    for stage, at, implied in filled:
        if at is None:
            plan.held_back.append(f"{stage.value}: no date")
            return plan
        if (stage.value, at) in known or (not started and _reached(current, stage)):
            plan.already_recorded += 1
            continue  # recorded before (a re-import) or the lead is past it already
        started = True
        if not can_transition(stage_now, stage):
            plan.held_back.append(
                f"{stage.value} at {at.isoformat()}: the lead is {stage_now.value} in Baton "
                "and cannot move there"
            )
            return plan
        if at < previous:
            if not implied:
                plan.moved.append(
                    f"{stage.value} dated {at.isoformat()} is before the step before it "
                    f"({previous.isoformat()}); recorded at that moment"
                )
            at = previous
        value = deal_value if stage == Stage.CUSTOMER else None
        plan.steps.append(Step(stage, at, implied, value))
        stage_now, previous = stage, at
    return plan


def _reached(current: Stage, stage: Stage) -> bool:
    """Whether a lead in ``current`` is at or past the funnel stage ``stage``."""
    return current in _MAIN and stage in _MAIN and _MAIN[current] >= _MAIN[stage]


# --- CRM vocabulary --------------------------------------------------------------------------

HISTORY_FIELDS = frozenset(
    {
        "stage",
        "mql_at",
        "sal_at",
        "sql_at",
        "opportunity_at",
        "customer_at",
        "won_at",
        "lost_at",
        "disqualified_at",
        "closed_at",
        "outcome",
        "amount",
        "won",
    }
)
"""Where a history import's columns may go besides the lead's own fields: ``stage``
(the record's current lifecycle stage or status, in the CRM's words), the moment each
stage was reached (``mql_at``... ``customer_at``), the outcome (``outcome`` in words,
or ``won`` yes/no) with its date (``won_at``, ``lost_at``, ``disqualified_at``, or
``closed_at`` for any of them) and the deal's ``amount``."""

STAGE_WORDS: dict[str, str] = {
    # Baton's own
    **{s.value: s.value for s in Stage},
    # HubSpot lifecycle stages (internal values and labels)
    "subscriber": "lead",
    "marketingqualifiedlead": "mql",
    "marketing_qualified_lead": "mql",
    "salesqualifiedlead": "sql",
    "sales_qualified_lead": "sql",
    "evangelist": "customer",
    "other": "lead",
    # HubSpot deal stages
    "appointmentscheduled": "sal",
    "appointment_scheduled": "sal",
    "qualifiedtobuy": "sql",
    "qualified_to_buy": "sql",
    "presentationscheduled": "opportunity",
    "presentation_scheduled": "opportunity",
    "decisionmakerboughtin": "opportunity",
    "decision_maker_bought_in": "opportunity",
    "contractsent": "opportunity",
    "contract_sent": "opportunity",
    "closedwon": "won",
    "closed_won": "won",
    "closedlost": "lost",
    "closed_lost": "lost",
    # Salesforce lead statuses
    "open_not_contacted": "mql",
    "working_contacted": "sal",
    "closed_converted": "sql",
    "closed_not_converted": "disqualified",
    "unqualified": "disqualified",
    "nurturing": "nurture",
    # Salesforce opportunity stages
    "prospecting": "sql",
    "qualification": "sql",
    "needs_analysis": "opportunity",
    "value_proposition": "opportunity",
    "id_decision_makers": "opportunity",
    "perception_analysis": "opportunity",
    "proposal_price_quote": "opportunity",
    "negotiation_review": "opportunity",
    "won": "won",
    "lost": "lost",
    "disqualified": "disqualified",
}
"""A CRM's stage or status (as :func:`word_key` folds it) -> a Baton stage, or an
outcome (``won``, ``lost``)."""


def word_key(value: str) -> str:
    """``'Closed - Not Converted'`` -> ``'closed_not_converted'``."""
    out = []
    for ch in value.strip().lower():
        out.append(ch if ch.isalnum() else "_")
    return "_".join(part for part in "".join(out).split("_") if part)


def read_stage_word(value: str) -> str | None:
    """A CRM's stage or status as a Baton stage or outcome (``won``/``lost``/
    ``disqualified``), or ``None`` when Baton does not know the word."""
    return STAGE_WORDS.get(word_key(value))


BUILT_IN_MAPPINGS: dict[str, dict[str, str]] = {
    "hubspot": {
        # Contacts export
        "Record ID": "external_id",
        "Contact ID": "external_id",
        "Email": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Company Name": "company",
        "Job Title": "title",
        "Phone Number": "phone",
        "Country/Region": "country",
        "State/Region": "region",
        "Postal Code": "postal_code",
        "Original Source": "source",
        "Original Source Drill-Down 1": "attributes.source_drill_down_1",
        "Create Date": "created_at",
        "Lifecycle Stage": "stage",
        "Became a Marketing Qualified Lead Date": "mql_at",
        "Became a Sales Qualified Lead Date": "sql_at",
        "Became an Opportunity Date": "opportunity_at",
        "Became a Customer Date": "customer_at",
        # Deals export (joined per contact)
        "Deal Stage": "outcome",
        "Close Date": "closed_at",
        "Amount": "amount",
    },
    "salesforce": {
        # Lead report / Data Loader export
        "Lead ID": "external_id",
        "Email": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Company": "company",
        "Company / Account": "company",
        "Title": "title",
        "Phone": "phone",
        "Country": "country",
        "State/Province": "region",
        "Zip/Postal Code": "postal_code",
        "Lead Source": "source",
        "Created Date": "created_at",
        "Lead Status": "stage",
        "Converted Date": "sql_at",
        # Opportunity export (joined per lead)
        "Stage": "outcome",
        "Close Date": "closed_at",
        "Amount": "amount",
        "Won": "won",
    },
}
"""The column names of HubSpot's and Salesforce's standard lead (contact) and deal
(opportunity) exports, mapped to Baton. A column a file does not have is simply not
used; a saved mapping of the same name replaces the built-in."""


def read_amount(text: str) -> float | None:
    """``'12,500.00'``, ``'$12500'``, ``'12500 USD'``, ``'12.500,00 €'``, ``'12 500'``
    -> 12500.0; ``'12,5'`` -> 12.5; ``None`` when empty. Of ``,`` and ``.``, the last
    one is the decimal mark when both appear; a lone comma is one when 1 or 2 digits
    follow it, several dots are thousands. Raises ``ValueError`` for text that is not
    an amount."""
    if not text.strip():
        return None
    kept = "".join(ch for ch in text if ch.isdigit() or ch in ".,-")
    if "," in kept and "." in kept:
        decimal = "," if kept.rfind(",") > kept.rfind(".") else "."
    elif "," in kept:
        decimal = "," if kept.count(",") == 1 and len(kept.rpartition(",")[2]) in (1, 2) else "."
    else:
        decimal = "," if kept.count(".") > 1 else "."
    cleaned = kept.replace("." if decimal == "," else ",", "").replace(",", ".")
    if not cleaned or cleaned in (".", "-") or cleaned.count(".") > 1:
        raise ValueError(f"{text!r} is not an amount")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not an amount") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def outcome_of(values: Mapping[str, str]) -> str | None:
    """The row's outcome (``won``, ``lost``, ``disqualified`` or ``None``) from its
    ``outcome`` words (a deal stage), its ``won`` yes/no, or its ``stage``."""
    for key in ("outcome", "stage"):
        word = values.get(key)
        if word:
            read = read_stage_word(word)
            if read in OUTCOMES:
                return read
            if read == "customer":
                return "won"
    won = values.get("won")
    if won is not None and won.strip():
        flagged = won.strip().lower()
        if flagged in ("1", "true", "yes", "y", "won"):
            return "won"
        if flagged in ("0", "false", "no", "n") and values.get("closed_at"):
            return "lost"
    return None


def words_unknown(
    values: Mapping[str, str], keys: Sequence[str] = ("stage", "outcome")
) -> list[str]:
    """The columns whose stage words Baton does not know."""
    return [k for k in keys if values.get(k) and read_stage_word(values[k]) is None]
