"""Previewing a nurture email: a template of the active contract (or of a draft's
text) rendered for one real lead, exactly as the worker would send it, before anyone
enrolls anybody.

Also where a template's variables come from for a lead (:func:`template_contexts_in`):
the lead's fields and attributes, and the last rep who had it (the newest handoff with
a rep). The sender uses the same function, so a preview and a send never differ.

Access: :attr:`Action.READ_NURTURE` (admins and marketing). The preview leaves no trace
(no outbox row, no send log) and its links are the originals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal
from baton.domain.contract import HandoffContract
from baton.domain.errors import FieldProblem, NotFound, ValidationFailed
from baton.domain.nurture_rules import NurtureTemplate
from baton.domain.suggest import suggest
from baton.notify.nurture_templates import (
    RenderedNurtureEmail,
    TemplateContext,
    lead_context,
    render_step,
    rep_context,
)
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.contract_rules import active_contract_in
from baton.services.contracts import check_contract
from baton.store.tables import handoffs, leads, reps

PREVIEW_UNSUBSCRIBE_PATH = "/u/preview"


@dataclass(frozen=True)
class NurturePreview:
    """One template rendered for one lead."""

    lead_id: int
    template: str
    sequence: str | None
    step: int | None
    contract_version: int | None
    """The active version used, or None for a draft's text."""
    email: RenderedNurtureEmail
    to: str | None


def template_contexts_in(
    connection: Connection,
    lead_ids: Sequence[int],
    unsubscribe_url: Callable[[int], str],
) -> dict[int, TemplateContext]:
    """What a template sees for each of ``lead_ids`` that exists (in two queries,
    whatever the number of leads): its fields, and the last rep who had it."""
    ids = list(dict.fromkeys(lead_ids))
    out: dict[int, TemplateContext] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        rows = connection.execute(select(leads).where(leads.c.id.in_(part))).mappings().all()
        last = (
            select(handoffs.c.lead_id, reps.c.name, reps.c.email, handoffs.c.id)
            .join(reps, reps.c.id == handoffs.c.rep_id)
            .where(handoffs.c.lead_id.in_(part))
            .order_by(handoffs.c.lead_id, handoffs.c.id)
        )
        rep_of: dict[int, dict[str, Any] | None] = {}
        for lead_id, name, email, _ in connection.execute(last):
            rep_of[lead_id] = rep_context(name, email)  # the newest wins
        for row in rows:
            out[row["id"]] = TemplateContext(
                lead=lead_context(dict(row)),
                rep=rep_of.get(row["id"]),
                unsubscribe_url=unsubscribe_url(row["id"]),
            )
    return out


def pick_template(
    contract: HandoffContract,
    *,
    template: str | None,
    sequence: str | None,
    step: int | None,
) -> tuple[str, NurtureTemplate]:
    """The template named, or the one of ``sequence``'s ``step`` (1-based, as people
    count), or a :class:`ValidationFailed` naming the field."""
    nurture = contract.nurture
    if template is not None:
        found = nurture.templates.get(template)
        if found is None:
            known = list(nurture.templates)
            raise ValidationFailed(
                f"no template '{template}' in the contract",
                [FieldProblem("template", _unknown("template", template, known))],
            )
        return template, found
    if sequence is None:
        raise ValidationFailed(
            "name a template, or a sequence and a step",
            [FieldProblem("template", "give a template, or a sequence and a step")],
        )
    chosen = nurture.sequence(sequence)
    if chosen is None:
        raise ValidationFailed(
            f"no sequence '{sequence}' in the contract",
            [FieldProblem("sequence", _unknown("sequence", sequence, list(nurture.sequences)))],
        )
    number = step if step is not None else 1
    if not 1 <= number <= len(chosen.steps):
        raise ValidationFailed(
            f"sequence {sequence} has {len(chosen.steps)} step(s)",
            [FieldProblem("step", f"must be between 1 and {len(chosen.steps)}")],
        )
    name = chosen.steps[number - 1].template
    return name, nurture.templates[name]


def _unknown(kind: str, name: str, known: list[str]) -> str:
    listed = ", ".join(known) if known else "none"
    return f"unknown {kind} '{name}'{suggest(name, known)}; the contract has: {listed}"


def preview_template(
    ctx: Context,
    *,
    lead_id: int,
    actor: Principal,
    template: str | None = None,
    sequence: str | None = None,
    step: int | None = None,
    contract_text: str | None = None,
) -> NurturePreview:
    """``template`` (or ``sequence``'s ``step``, 1-based) of the active contract, or of
    ``contract_text`` when given, rendered for lead ``lead_id``."""
    allowed(actor, Action.READ_NURTURE)
    draft = check_contract(contract_text) if contract_text is not None else None
    with ctx.read() as connection:
        version: int | None = None
        if draft is None:
            active = active_contract_in(connection, share_lock=False)
            if active is None:
                raise NotFound("no contract is active; preview a draft by sending its text")
            version, contract = active
        else:
            contract = draft
        name, chosen = pick_template(contract, template=template, sequence=sequence, step=step)
        base = ctx.settings.public_url.rstrip("/")
        contexts = template_contexts_in(
            connection, [lead_id], lambda _: f"{base}{PREVIEW_UNSUBSCRIBE_PATH}"
        )
    context = contexts.get(lead_id)
    if context is None:
        raise NotFound(f"lead {lead_id} does not exist")
    email = render_step(chosen, context, name=name)
    return NurturePreview(
        lead_id=lead_id,
        template=name,
        sequence=sequence if template is None else None,
        step=(step or 1) if template is None else None,
        contract_version=version,
        email=email,
        to=_address(context.lead),
    )


def _address(lead: Mapping[str, Any]) -> str | None:
    email = lead.get("email")
    return str(email) if email else None
