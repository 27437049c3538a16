"""Sending nurture steps: the worker's *nurture* lane.

Each pass claims a batch of due enrollments and plans each one's step in a transaction
of its own. The lane never sends anything itself: it writes the email to the outbox,
and the email courier (:mod:`baton.services.delivery`, leased and fenced) delivers it
with the outbox's ``Message-ID``.

Claiming
    ``status = 'active' AND next_due_at <= now`` and no live lease: the rows are
    leased (``claimed_until = now + BATON_OUTBOX_LEASE_SECONDS``, a ``claim_token`` of
    this pass) with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never
    claim the same enrollment; on SQLite an idle pass only reads (a check before it
    takes the write turn). A worker killed with a claim leaves it to expire. The batch
    is then planned in one transaction that locks the enrollments and, in share mode
    with ``SKIP LOCKED``, their leads: a lead another transaction is changing (a
    verdict, an unsubscribe) is left for the next pass, so the worker never waits for a
    lead while holding enrollments, and an unsubscribe either committed before the
    check (seen) or waits for the step's commit.

Exactly once per step
    Planning a step is ONE transaction: the send-log row (``nurture_sends``, unique per
    enrollment and step), the outbox row and the enrollment's advance (``touches + 1``,
    the next step and when it is due, or ``completed`` at the last step or the cap).
    A crash before the commit leaves nothing (the step is planned again later); after
    it, the step is planned and the enrollment has moved on, so it is never planned
    twice (a second attempt that finds the send-log row only moves the enrollment on).
    The outbox then delivers the row exactly once except in one window: the SMTP
    server accepted the message and the process died before the outbox row was marked
    sent. The lease runs out and the message is sent again *with the same
    Message-ID* (``<outbox-N.KEY@baton>``, stored on the send-log row), so a receiver
    can drop the repeat and a count of Message-IDs on the receiving side, against the
    send log, finds it (``tests/e2e/test_nurture_crash.py`` does exactly that).

Everything is checked again at send time, on the state committed now (never on what
the enrollment was when claimed): the enrollment is still active and still ours; the
lead still exists and is not merged away; it has consent with a recorded basis; it is
not unsubscribed, suppressed or hard-bounced; it has an address; no handoff is open
(sales took it back). A failed check ends the enrollment with its reason. A step whose
condition (grades, sources) does not hold is recorded as ``skipped`` in the send log
and the next step is planned.

Which contract renders the step: the version that enrolled the lead
(``nurture_enrollments.contract_version``), like an SLA ladder follows the version its
handoff started under: the person gets the sequence that was signed when they were
enrolled, and a click is verified against the very template it came from. A new
version's copy applies to new enrollments.

Throttle: ``nurture.send_rate_per_minute`` of the active contract, for the whole
installation. Before claiming, a pass counts the steps planned in the last 60 s plus
the enrollments currently leased (both indexed) and claims at most the difference;
on PostgreSQL the count and the claim are serialised by a transaction-level advisory
lock, on SQLite by the single writer. The outbox sends them as they come, so the SMTP
rate follows the planning rate.

A bad enrollment never stops the lane: an error inside Baton while planning one
(a template that fails at render although validated, a contract version that cannot
be read) ends that enrollment with ``exit_reason = 'error'``, logged with its id; an
admin can look and enroll the lead again. Database errors are not the enrollment's
fault: they propagate, the lane backs off and the lease expires, so the step is tried
again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from baton.domain.contract import HandoffContract
from baton.domain.nurture import Bounds, LeadFacts, plan_next, step_applies
from baton.domain.nurture_rules import NurtureTemplate
from baton.domain.privacy import suppression_keys
from baton.notify.nurture_templates import (
    TemplateContext,
    lead_context,
    render_step,
    rep_context,
)
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in, rules_of
from baton.services.delivery import message_id_of
from baton.services.nurture_links import (
    link_hook,
    list_unsubscribe_headers,
    open_pixel_html,
    unsubscribe_url,
    with_open_pixel,
)
from baton.store.tables import (
    contracts,
    handoffs,
    lead_scores,
    leads,
    nurture_enrollments,
    nurture_sends,
    outbox,
    reps,
    suppressions,
)

log = logging.getLogger("baton.worker")

BATCH = 50
"""Enrollments claimed per pass."""
TOPIC = "nurture"
"""The outbox topic of a nurture email."""
OPEN_HANDOFF = ("queued", "assigned", "accepted", "qualified")
DEFAULT_RATE = 120
THROTTLE_LOCK = 0x6E757274  # "nurt": the advisory lock serialising claims on PostgreSQL
WINDOW = timedelta(minutes=1)


@dataclass
class NurturePass:
    """What one pass of the nurture lane did."""

    planned: int = 0
    """Steps written to the outbox."""
    skipped: int = 0
    """Steps whose condition did not hold (recorded, not sent)."""
    exited: int = 0
    """Enrollments ended at send time (a check failed, the sequence ended, an error)."""
    throttled: bool = False
    """The rate limit held this pass back."""

    @property
    def busy(self) -> bool:
        return bool(self.planned or self.skipped or self.exited)


# --- the pass -----------------------------------------------------------------------------


def run_nurture(ctx: Context, *, limit: int = BATCH) -> NurturePass:
    """Claim up to ``limit`` due enrollments (within the throttle) and plan their steps:
    the whole batch in one transaction (a few queries read what every check needs),
    each enrollment on its own when the batch fails inside Baton, so one bad enrollment
    ends with ``error`` and never holds up the others."""
    report = NurturePass()
    claimed, token, throttled = _claim(ctx, limit)
    report.throttled = throttled
    if not claimed:
        return report
    try:
        with ctx.write() as connection:
            outcomes = plan_in(ctx, connection, claimed, token=token, now=ctx.clock.now())
    except DBAPIError:
        raise  # the database, not an enrollment: the lane backs off, the leases expire
    except Exception:
        log.warning("nurture: a batch of %d failed inside Baton; one at a time", len(claimed))
        outcomes = {}
        for enrollment_id in claimed:
            try:
                outcomes[enrollment_id] = plan_step(ctx, enrollment_id, token=token)
            except DBAPIError:
                raise
            except Exception:  # a bad enrollment must not stop the lane
                log.exception(
                    "nurture enrollment %s: planning failed inside Baton; ended", enrollment_id
                )
                _end(ctx, enrollment_id, token, "error")
                outcomes[enrollment_id] = "exited"
    for outcome in outcomes.values():
        if outcome == "planned":
            report.planned += 1
        elif outcome == "skipped":
            report.skipped += 1
        elif outcome == "exited":
            report.exited += 1
    return report


def _lease(ctx: Context) -> timedelta:
    return timedelta(seconds=ctx.settings.outbox_lease_seconds)


def _due(now: datetime) -> Any:
    return (
        select(nurture_enrollments.c.id)
        .where(
            nurture_enrollments.c.status == "active",
            nurture_enrollments.c.next_due_at <= now,
            or_(
                nurture_enrollments.c.claimed_until.is_(None),
                nurture_enrollments.c.claimed_until < now,
            ),
        )
        .order_by(nurture_enrollments.c.next_due_at, nurture_enrollments.c.id)
    )


def _claim(ctx: Context, limit: int) -> tuple[list[int], str, bool]:
    now = ctx.clock.now()
    with ctx.read() as connection:
        # Idle passes (most of them) never take SQLite's write turn.
        if connection.execute(_due(now).limit(1)).first() is None:
            return [], "", False
    token = uuid.uuid4().hex
    with ctx.write() as connection:
        if ctx.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": THROTTLE_LOCK})
        room = _room(connection, now)
        size = min(limit, room)
        if size <= 0:
            return [], token, True
        ids = [
            int(row[0])
            for row in connection.execute(_due(now).limit(size).with_for_update(skip_locked=True))
        ]
        if ids:
            connection.execute(
                update(nurture_enrollments)
                .where(nurture_enrollments.c.id.in_(ids))
                .values(claimed_until=now + _lease(ctx), claim_token=token)
            )
    return ids, token, size < limit and len(ids) == size


def send_rate(connection: Connection) -> int:
    """``nurture.send_rate_per_minute`` of the active contract (120 without one)."""
    active = active_contract_in(connection, share_lock=False)
    return active[1].nurture.send_rate_per_minute if active else DEFAULT_RATE


def _room(connection: Connection, now: datetime) -> int:
    """How many more steps may be planned now: the rate, less the steps planned in the
    last minute and the enrollments other passes hold."""
    recent = connection.execute(
        select(func.count())
        .select_from(nurture_sends)
        .where(nurture_sends.c.planned_at > now - WINDOW, nurture_sends.c.outbox_id.is_not(None))
    ).scalar_one()
    held = connection.execute(
        select(func.count())
        .select_from(nurture_enrollments)
        .where(nurture_enrollments.c.claimed_until > now)
    ).scalar_one()
    return send_rate(connection) - int(recent) - int(held)


# --- one enrollment -----------------------------------------------------------------------


def plan_step(ctx: Context, enrollment_id: int, *, token: str | None = None) -> str:
    """Check everything again and plan one enrollment's due step in ONE transaction
    (see :func:`plan_in`)."""
    with ctx.write() as connection:
        return plan_in(ctx, connection, [enrollment_id], token=token, now=ctx.clock.now()).get(
            enrollment_id, "gone"
        )


@dataclass
class _World:
    """What the checks of a batch read, in one query each."""

    leads: dict[int, dict[str, Any]]
    busy: set[int]
    """Leads another transaction holds: their enrollments wait for the next pass."""
    suppressed: dict[str, str]
    in_sales: set[int]
    grades: dict[int, str]
    reps: dict[int, dict[str, Any] | None]
    logged: dict[tuple[int, int], str]
    contracts: dict[int, HandoffContract | None]


def _world(connection: Connection, rows: list[dict[str, Any]]) -> _World:
    lead_ids = sorted({int(r["lead_id"]) for r in rows})
    # Locked in share mode, skipping leads another transaction is changing (a verdict,
    # an unsubscribe): the checks hold until the commit, an unsubscribe waits for it or
    # is seen, and the worker never waits for a lead while it holds enrollments.
    people = {
        int(r["id"]): dict(r)
        for r in connection.execute(
            select(leads)
            .where(leads.c.id.in_(lead_ids))
            .with_for_update(read=True, skip_locked=True)
        ).mappings()
    }
    missing = [i for i in lead_ids if i not in people]
    busy = (
        {
            int(i)
            for i in connection.execute(select(leads.c.id).where(leads.c.id.in_(missing))).scalars()
        }
        if missing
        else set()
    )
    # Each address under every key that may stand for it: its own, and the one an
    # erasure of it left (baton.domain.privacy.suppression_keys).
    owner = {
        key: str(p["email_key"])
        for p in people.values()
        if p["email_key"]
        for key in suppression_keys(str(p["email_key"]))
    }
    suppressed: dict[str, str] = {}
    for k, reason in connection.execute(
        select(suppressions.c.email_key, suppressions.c.reason).where(
            suppressions.c.email_key.in_(sorted(owner))
        )
    ):
        if suppressed.get(owner[str(k)]) != "hard_bounce":
            suppressed[owner[str(k)]] = str(reason)
    in_sales = {
        int(i)
        for i in connection.execute(
            select(handoffs.c.lead_id)
            .where(handoffs.c.lead_id.in_(lead_ids), handoffs.c.status.in_(OPEN_HANDOFF))
            .distinct()
        ).scalars()
    }
    grades = {
        int(i): str(g)
        for i, g in connection.execute(
            select(lead_scores.c.lead_id, lead_scores.c.grade).where(
                lead_scores.c.lead_id.in_(lead_ids)
            )
        )
    }
    reps_of: dict[int, dict[str, Any] | None] = {}
    for lead_id, name, email in connection.execute(
        select(handoffs.c.lead_id, reps.c.name, reps.c.email)
        .select_from(handoffs.join(reps, reps.c.id == handoffs.c.rep_id))
        .where(handoffs.c.lead_id.in_(lead_ids))
        .order_by(handoffs.c.lead_id, handoffs.c.created_at.desc(), handoffs.c.id.desc())
    ):
        reps_of.setdefault(int(lead_id), rep_context(name, email))  # the last rep
    logged = {
        (int(e), int(step)): str(status)
        for e, step, status in connection.execute(
            select(
                nurture_sends.c.enrollment_id, nurture_sends.c.step, nurture_sends.c.status
            ).where(nurture_sends.c.enrollment_id.in_([r["id"] for r in rows]))
        )
    }
    versions = sorted({int(r["contract_version"]) for r in rows})
    found = {
        int(v): rules_of(spec)
        for v, spec in connection.execute(
            select(contracts.c.version, contracts.c.spec).where(contracts.c.version.in_(versions))
        )
    }
    return _World(
        leads=people,
        busy=busy,
        suppressed=suppressed,
        in_sales=in_sales,
        grades=grades,
        reps=reps_of,
        logged=logged,
        contracts={v: found.get(v) for v in versions},
    )


def plan_in(
    ctx: Context,
    connection: Connection,
    ids: list[int],
    *,
    token: str | None,
    now: datetime,
) -> dict[int, str]:
    """Check everything again and plan the due step of each enrollment of ``ids``, in
    the caller's transaction: the send-log rows, the outbox rows and the advances are
    written together, so a step is planned exactly once.

    Returns, per enrollment, ``planned`` (written to the outbox), ``skipped`` (the
    step's condition no longer holds; the next one is planned), ``exited`` (a check
    failed, or the sequence ended) or ``gone`` (no longer active or not due, or claimed
    by someone else). An error while rendering one enrollment ends it with ``error``;
    any other error propagates (the caller retries one at a time)."""
    query = select(nurture_enrollments).where(
        nurture_enrollments.c.id.in_(ids), nurture_enrollments.c.status == "active"
    )
    if token is not None:
        query = query.where(nurture_enrollments.c.claim_token == token)
    rows = [
        dict(r)
        for r in connection.execute(
            query.order_by(nurture_enrollments.c.id).with_for_update()
        ).mappings()
    ]
    outcomes: dict[int, str] = {}
    if not rows:
        return outcomes
    world = _world(connection, rows)
    exits: list[dict[str, Any]] = []
    advances: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    mail: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (send-log row, outbox row)
    for row in rows:
        enrollment_id = int(row["id"])
        if row["next_due_at"] is None or row["next_due_at"] > now:
            _release(connection, enrollment_id)
            outcomes[enrollment_id] = "gone"
            continue
        if int(row["lead_id"]) in world.busy:
            _release(connection, enrollment_id)
            outcomes[enrollment_id] = "gone"
            continue
        lead = world.leads.get(int(row["lead_id"]), {})
        why = _why_not(lead, world)
        contract = world.contracts.get(int(row["contract_version"]))
        sequence = contract.nurture.sequence(row["sequence"]) if contract else None
        if why is None and sequence is None:
            log.error(
                "nurture enrollment %s: sequence %r is not in contract version %s; ended",
                enrollment_id,
                row["sequence"],
                row["contract_version"],
            )
            why = "error"
        if why is not None:
            exits.append({"v_id": enrollment_id, "v_reason": why})
            outcomes[enrollment_id] = "exited"
            continue
        assert contract is not None and sequence is not None
        facts = LeadFacts(
            country=lead["country"], grade=world.grades.get(int(lead["id"])), source=lead["source"]
        )
        step_index = int(row["next_step"])
        if step_index >= len(sequence.steps):
            advances.append(_advance(row, contract, facts, now=now, touched=False))
            outcomes[enrollment_id] = "exited"
            continue
        done = world.logged.get((enrollment_id, step_index))
        if done is not None:
            # Cannot happen through this module (the send-log row and the advance are
            # one transaction); a step already in the send log is never planned again.
            advances.append(_advance(row, contract, facts, now=now, touched=done != "skipped"))
            outcomes[enrollment_id] = "gone"
            continue
        step = sequence.steps[step_index]
        logged = {
            "enrollment_id": enrollment_id,
            "step": step_index,
            "lead_id": lead["id"],
            "email": lead["email"],
            "template": step.template,
            "planned_at": now,
        }
        if not step_applies(step, facts):
            # The lead changed since the step was planned (grade, source, country).
            skipped.append({**logged, "status": "skipped"})
            advances.append(_advance(row, contract, facts, now=now, touched=False))
            outcomes[enrollment_id] = "skipped"
            continue
        try:
            rendered = render_for(
                ctx,
                contract.nurture.templates[step.template],
                enrollment_id=enrollment_id,
                step=step_index,
                lead=lead,
                rep=world.reps.get(int(lead["id"])),
            )
        except Exception:  # validated templates do not fail; if one does, only this lead
            log.exception(
                "nurture enrollment %s: the step cannot be rendered; ended", enrollment_id
            )
            exits.append({"v_id": enrollment_id, "v_reason": "error"})
            outcomes[enrollment_id] = "exited"
            continue
        mail.append(
            (
                {**logged, "status": "queued", "links": rendered.links},
                {
                    "channel": "email",
                    "topic": TOPIC,
                    "recipient": lead["email"],
                    "payload": {
                        "subject": rendered.subject,
                        "text": rendered.text,
                        "html": rendered.html,
                        "headers": dict(rendered.headers),
                        "enrollment_id": enrollment_id,
                        "step": step_index,
                        "lead_id": lead["id"],
                    },
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                },
            )
        )
        advances.append(_advance(row, contract, facts, now=now, touched=True))
        outcomes[enrollment_id] = "planned"
    if mail:
        written = connection.execute(
            insert(outbox).returning(
                outbox.c.id, outbox.c.message_key, sort_by_parameter_order=True
            ),
            [message for _, message in mail],
        ).all()
        for (logged_row, _), (outbox_id, key) in zip(mail, written, strict=True):
            logged_row["outbox_id"] = int(outbox_id)
            logged_row["message_id"] = message_id_of(int(outbox_id), key)
    log_rows = [logged_row for logged_row, _ in mail] + skipped
    if log_rows:
        connection.execute(
            insert(nurture_sends),
            [{"outbox_id": None, "message_id": None, "links": None, **r} for r in log_rows],
        )
    if advances:
        connection.execute(
            update(nurture_enrollments)
            .where(nurture_enrollments.c.id == bindparam("v_id"))
            .values(
                touches=bindparam("v_touches"),
                next_step=bindparam("v_next_step"),
                next_due_at=bindparam("v_next_due_at"),
                last_touch_at=bindparam("v_last_touch_at"),
                status=bindparam("v_status"),
                exit_reason=bindparam("v_exit_reason"),
                ended_at=bindparam("v_ended_at"),
                claimed_until=None,
                claim_token=None,
            ),
            advances,
        )
    if exits:
        connection.execute(
            update(nurture_enrollments)
            .where(nurture_enrollments.c.id == bindparam("v_id"))
            .values(
                status="exited",
                exit_reason=bindparam("v_reason"),
                ended_at=now,
                next_due_at=None,
                claimed_until=None,
                claim_token=None,
            ),
            exits,
        )
        for item in exits:
            log.debug(
                "nurture enrollment %s ended at send time: %s", item["v_id"], item["v_reason"]
            )
    return outcomes


def _why_not(lead: Mapping[str, Any], world: _World) -> str | None:
    """Why this lead may not get a nurture email now (the exit reason), or None."""
    if not lead:
        return "error"
    if lead["merged_into_id"] is not None:
        return "merged"
    if not lead["email"] or not lead["email_key"]:
        return "no_email"
    if lead["unsubscribed_at"] is not None:
        return "unsubscribe"
    if lead["email_status"] == "hard_bounce":
        return "hard_bounce"
    suppressed = world.suppressed.get(str(lead["email_key"]))
    if suppressed is not None:
        return "hard_bounce" if suppressed == "hard_bounce" else "unsubscribe"
    if not lead["consent"] or not lead["consent_basis"]:
        return "no_consent"
    if int(lead["id"]) in world.in_sales:
        return "sales_took_back"
    return None


def _release(connection: Connection, enrollment_id: int) -> None:
    connection.execute(
        update(nurture_enrollments)
        .where(nurture_enrollments.c.id == enrollment_id)
        .values(claimed_until=None, claim_token=None)
    )


def _exit_in(connection: Connection, row: Mapping[str, Any], reason: str, *, now: datetime) -> None:
    connection.execute(
        update(nurture_enrollments)
        .where(nurture_enrollments.c.id == row["id"], nurture_enrollments.c.status == "active")
        .values(
            status="exited",
            exit_reason=reason,
            ended_at=now,
            next_due_at=None,
            claimed_until=None,
            claim_token=None,
        )
    )
    # Routine, counted as nurtured in the worker's pass summary: per item at debug.
    log.debug("nurture enrollment %s ended at send time: %s", row["id"], reason)


def _end(ctx: Context, enrollment_id: int, token: str, reason: str) -> None:
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = (
            connection.execute(
                select(nurture_enrollments).where(
                    nurture_enrollments.c.id == enrollment_id,
                    nurture_enrollments.c.claim_token == token,
                )
            )
            .mappings()
            .first()
        )
        if row is not None:
            _exit_in(connection, dict(row), reason, now=now)


# --- the contract, the plan and the render -------------------------------------------


def _advance(
    row: Mapping[str, Any],
    contract: HandoffContract,
    facts: LeadFacts,
    *,
    now: datetime,
    touched: bool,
) -> dict[str, Any]:
    """The enrollment past its current step (domain planning): touches + 1 when a
    message went out, the next step whose condition holds and when it is due, or
    ``completed`` at the last step or the touch cap."""
    section = contract.nurture
    sequence = section.sequences[row["sequence"]]
    touches = int(row["touches"]) + (1 if touched else 0)
    last = now if touched else (row["last_touch_at"] or row["enrolled_at"])
    plan = plan_next(
        sequence.steps,
        from_step=int(row["next_step"]) + 1,
        touches=touches,
        last_at=last,
        lead=facts,
        max_touches=section.touch_cap(row["sequence"]),
        bounds=Bounds(section.delay_days.min, section.delay_days.max),
    )
    active = plan.status == "active" and plan.step is not None
    return {
        "v_id": row["id"],
        "v_touches": touches,
        "v_next_step": plan.step if active else int(row["next_step"]) + 1,
        "v_next_due_at": plan.due_at if active else None,
        "v_last_touch_at": now if touched else row["last_touch_at"],
        "v_status": "active" if active else "completed",
        "v_exit_reason": None if active else str(plan.completion or "completed"),
        "v_ended_at": None if active else now,
    }


@dataclass(frozen=True)
class Rendered:
    """A step's email as the outbox carries it."""

    subject: str
    text: str
    html: str | None
    headers: Mapping[str, str]
    links: list[str]


def render_for(
    ctx: Context,
    template: NurtureTemplate,
    *,
    enrollment_id: int,
    step: int,
    lead: Mapping[str, Any],
    rep: Mapping[str, Any] | None,
) -> Rendered:
    """Render a step for a lead: signed click links, the open pixel at the end of the
    html part, ``List-Unsubscribe`` and one-click ``List-Unsubscribe-Post`` headers."""
    settings = ctx.settings
    lead_id = int(lead["id"])
    email = render_step(
        template,
        TemplateContext(
            lead=lead_context(lead),
            rep=rep,
            unsubscribe_url=unsubscribe_url(settings, lead_id),
        ),
        link=link_hook(settings, enrollment_id, step),
    )
    html = email.html
    return Rendered(
        subject=email.subject,
        text=email.text,
        html=None
        if html is None
        else with_open_pixel(html, open_pixel_html(settings, enrollment_id, step)),
        headers=list_unsubscribe_headers(settings, lead_id),
        links=list(email.links),
    )
