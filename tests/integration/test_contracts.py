"""The contract's life (draft, two signatures, active, superseded), re-scoring on
activation, and the handoff point inside the ingest and capture transactions; on
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from tests.conftest import principal_for
from tests.integration.test_routing_locks import POSTGRES, _in_thread, _wait_until_blocked

from baton.domain.access import operator
from baton.domain.clock import ManualClock
from baton.domain.errors import Conflict, Forbidden, ValidationFailed
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.domain.scoring import Event, engagement_state, score
from baton.services.activities import ingest_activities
from baton.services.context import Context
from baton.services.contracts import (
    activate_contract,
    active_contract,
    approve_contract,
    create_contract,
    diff_versions,
    list_contracts,
    rescore_active,
)
from baton.services.leads import capture_lead, change_stage, get_lead
from baton.services.prep import prep_checklist, tick_prep
from baton.services.scoring import lead_score
from baton.store.tables import transitions

EXAMPLE_CONTRACT = Path(__file__).parents[2] / "contracts" / "example.yaml"

READER = operator("reader")
"""Reads on behalf of the local operator (who may read everything)."""


def contract_yaml(threshold: int = 50, **extra: Any) -> str:
    data: dict[str, Any] = {
        "schema_version": 1,
        "name": "Test contract",
        "scoring": {
            "fit": [{"name": "US", "when": {"field": "country", "equals": "US"}, "points": 20}],
            "engagement": [
                {
                    "name": "Pricing",
                    "event": "page_view",
                    "where": {"url": "/pricing"},
                    "points": 10,
                    "half_life_days": 30,
                },
            ],
        },
        "mql": {
            "threshold": threshold,
            "hand_raise": ["demo_request"],
            "recycle_cooldown_days": 30,
        },
    }
    data.update(extra)
    return yaml.safe_dump(data, sort_keys=False)


def activate(ctx: Context, body: str) -> int:
    version = create_contract(ctx, body, actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    activate_contract(ctx, version, actor=operator("maria"))
    return version


def lead(ctx: Context, email: str, **fields: Any) -> int:
    data = LeadCreate.model_validate({"email": email, **fields})
    return capture_lead(ctx, data, actor=operator("form")).lead.id


def views(ctx: Context, clock: ManualClock, email: str, n: int, url: str = "/pricing") -> None:
    rows = [
        {
            "email": email,
            "type": "page_view",
            "occurred_at": clock.now().isoformat(),
            "properties": {"url": url},
            "idempotency_key": uuid.uuid4().hex,
        }
        for i in range(n)
    ]
    report = ingest_activities(ctx, rows, actor=operator("web"))
    assert not report.errors


def mql_transitions(ctx: Context, lead_id: int) -> list[tuple[str, int | None]]:
    with ctx.read() as connection:
        return [
            (r.reason, r.contract_version)
            for r in connection.execute(
                select(transitions.c.reason, transitions.c.contract_version).where(
                    transitions.c.lead_id == lead_id, transitions.c.to_stage == "mql"
                )
            )
        ]


def test_a_version_needs_two_different_signatures_before_activation(ctx: Context) -> None:
    version = create_contract(ctx, contract_yaml(), actor=operator("maria")).version

    with pytest.raises(Conflict, match="needs approval by marketing and sales"):
        activate_contract(ctx, version, actor=operator("maria"))
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    with pytest.raises(Conflict, match="two different approvers"):
        approve_contract(ctx, version, role="sales", actor=operator("maria"))
    with pytest.raises(Conflict, match="already approved for marketing"):
        approve_contract(ctx, version, role="marketing", actor=operator("mike"))
    assert approve_contract(ctx, version, role="sales", actor=operator("sam")).status == "approved"
    activate_contract(ctx, version, actor=operator("maria"))

    second = create_contract(ctx, contract_yaml(threshold=70), actor=operator("maria")).version
    approve_contract(ctx, second, role="marketing", actor=operator("maria"))
    approve_contract(ctx, second, role="sales", actor=operator("sam"))
    report = activate_contract(ctx, second, actor=operator("sam"))

    statuses = {v.version: v.status for v in list_contracts(ctx, actor=READER)}
    assert statuses == {version: "superseded", second: "active"}
    assert report.previous == version
    assert active_contract(ctx)[0] == second  # type: ignore[index]
    assert [c.text for c in diff_versions(ctx, version, second, actor=READER)] == [
        "threshold 50 → 70"
    ]


def test_a_broken_contract_is_not_stored(ctx: Context) -> None:
    with pytest.raises(ValidationFailed) as caught:
        create_contract(
            ctx, contract_yaml().replace("threshold", "treshold"), actor=operator("maria")
        )
    assert [p.loc for p in caught.value.problems] == ["mql.threshold", "mql.treshold"]
    assert list_contracts(ctx, actor=READER) == []


def test_activation_rescores_everyone_and_hands_off_qualified_leads(
    ctx: Context, clock: ManualClock
) -> None:
    hot = lead(ctx, "hot@northwind.com", country="US")
    warm = lead(ctx, "warm@northwind.com", country="DE")
    accepted = lead(ctx, "sal@northwind.com", country="US")
    views(ctx, clock, "hot@northwind.com", 4)
    views(ctx, clock, "warm@northwind.com", 4)
    views(ctx, clock, "sal@northwind.com", 4)
    change_stage(ctx, accepted, Stage.MQL, actor=operator("ops"), reason="manual")
    change_stage(ctx, accepted, Stage.SAL, actor=operator("sam"), reason="accepted")

    version = create_contract(ctx, contract_yaml(threshold=50), actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    report = activate_contract(ctx, version, actor=operator("maria"))

    assert report.leads_scored == 3
    assert report.crossed_up == 2  # hot (20 + 40) and the accepted lead
    assert report.became_mql == 1  # the accepted lead keeps its stage
    assert get_lead(ctx, hot, actor=READER).stage == "mql"
    assert get_lead(ctx, warm, actor=READER).stage == "lead"
    assert get_lead(ctx, accepted, actor=READER).stage == "sal"
    assert mql_transitions(ctx, hot) == [("score 60 ≥ 50", version)]

    stricter = create_contract(ctx, contract_yaml(threshold=65), actor=operator("maria")).version
    approve_contract(ctx, stricter, role="marketing", actor=operator("maria"))
    approve_contract(ctx, stricter, role="sales", actor=operator("sam"))
    second = activate_contract(ctx, stricter, actor=operator("maria"))
    assert (second.crossed_up, second.crossed_down, second.became_mql) == (0, 2, 0)
    assert get_lead(ctx, hot, actor=READER).stage == "mql", (
        "leads past the handoff keep their stage"
    )


def test_the_handoff_happens_inside_the_ingest_that_crosses_the_threshold(
    ctx: Context, clock: ManualClock
) -> None:
    version = activate(ctx, contract_yaml(threshold=50))
    lead_id = lead(ctx, "dana@northwind.com", country="US")

    views(ctx, clock, "dana@northwind.com", 2)
    assert get_lead(ctx, lead_id, actor=READER).stage == "lead"
    assert lead_score(ctx, lead_id, actor=READER).total == 40
    views(ctx, clock, "dana@northwind.com", 1)

    assert get_lead(ctx, lead_id, actor=READER).stage == "mql"
    assert mql_transitions(ctx, lead_id) == [("score 50 ≥ 50", version)]


def test_a_hand_raise_hands_off_at_once_whatever_the_score(
    ctx: Context, clock: ManualClock
) -> None:
    version = activate(ctx, contract_yaml(threshold=500))
    report = ingest_activities(
        ctx,
        [
            {
                "email": "new@northwind.com",
                "type": "demo_request",
                "occurred_at": clock.now().isoformat(),
            }
        ],
        actor=operator("form"),
    )
    (lead_id,) = report.mql
    assert get_lead(ctx, lead_id, actor=READER).stage == "mql"
    assert mql_transitions(ctx, lead_id) == [("hand-raise: demo_request", version)]


def test_a_recycled_lead_waits_for_the_cool_down(ctx: Context, clock: ManualClock) -> None:
    activate(ctx, contract_yaml(threshold=50))
    lead_id = lead(ctx, "cold@northwind.com", country="US")
    change_stage(ctx, lead_id, Stage.NURTURE, actor=operator("sam"), reason="not ready yet")

    views(ctx, clock, "cold@northwind.com", 5)
    assert get_lead(ctx, lead_id, actor=READER).stage == "nurture"
    clock.advance(days=31)
    views(ctx, clock, "cold@northwind.com", 3)

    assert get_lead(ctx, lead_id, actor=READER).stage == "mql"


def test_incremental_scores_equal_a_full_recompute(ctx: Context, clock: ManualClock) -> None:
    activate(ctx, contract_yaml(threshold=10_000))
    lead_id = lead(ctx, "dana@northwind.com", country="US")
    history: list[Event] = []
    for day in range(6):
        views(ctx, clock, "dana@northwind.com", day % 3 + 1)
        history += [Event("page_view", clock.now(), {"url": "/pricing"})] * (day % 3 + 1)
        clock.advance(days=7)

    stored = lead_score(ctx, lead_id, actor=READER)
    version, contract = active_contract(ctx)  # type: ignore[misc]
    expected = score(contract, {"country": "US"}, engagement_state(contract, history), clock.now())
    assert stored.total == pytest.approx(expected.total, abs=0.02)
    assert stored.contract_version == version
    assert [h.label for h in stored.hits] == ["US", "Pricing"]


def test_required_prep_items_gate_the_score_handoff(ctx: Context, clock: ManualClock) -> None:
    prep = [
        {"id": "slot_booked", "label": "Has booked a slot", "required": True},
        {"id": "knows_address", "label": "Knows the address"},
    ]
    activate(ctx, contract_yaml(threshold=50, prep_checklist=prep))
    lead_id = lead(ctx, "dana@northwind.com", country="US")
    views(ctx, clock, "dana@northwind.com", 5)
    assert get_lead(ctx, lead_id, actor=READER).stage == "lead"
    assert [(i.id, i.done) for i in prep_checklist(ctx, lead_id, actor=READER)] == [
        ("slot_booked", False),
        ("knows_address", False),
    ]

    tick_prep(ctx, lead_id, "slot_booked", actor=operator("maria"))

    assert get_lead(ctx, lead_id, actor=READER).stage == "mql"
    with pytest.raises(ValidationFailed, match="unknown prep item"):
        tick_prep(ctx, lead_id, "slot", actor=operator("maria"))


def test_manual_transitions_record_the_contract_in_force(ctx: Context) -> None:
    version = activate(ctx, contract_yaml())
    lead_id = lead(ctx, "dana@northwind.com")
    change_stage(ctx, lead_id, Stage.NURTURE, actor=operator("sam"), reason="later")
    with ctx.read() as connection:
        recorded = connection.execute(
            select(transitions.c.contract_version).where(transitions.c.lead_id == lead_id)
        ).scalar_one()
    assert recorded == version


def test_fit_changes_from_a_new_capture_are_scored(ctx: Context, clock: ManualClock) -> None:
    activate(ctx, contract_yaml(threshold=40))
    lead_id = lead(ctx, "dana@northwind.com")
    views(ctx, clock, "dana@northwind.com", 2)
    assert get_lead(ctx, lead_id, actor=READER).stage == "lead"

    clock.advance(minutes=5)
    lead(ctx, "dana@northwind.com", country="US")

    assert get_lead(ctx, lead_id, actor=READER).stage == "mql"
    assert lead_score(ctx, lead_id, actor=READER).fit == 20
    assert timedelta(0) <= clock.now() - lead_score(ctx, lead_id, actor=READER).scored_at


def test_a_merge_rescores_the_survivor_with_both_histories(
    ctx: Context, clock: ManualClock
) -> None:
    from baton.services.merge import merge_leads

    activate(ctx, contract_yaml(threshold=1000))
    survivor = lead(ctx, "dana@northwind.com", country="US")
    absorbed = lead(ctx, "dana.reyes@gmail.com")
    views(ctx, clock, "dana@northwind.com", 2)
    views(ctx, clock, "dana.reyes@gmail.com", 3)

    merge_leads(ctx, survivor, absorbed, actor=operator("alice"))

    assert lead_score(ctx, survivor, actor=READER).total == 20 + 50
    views(ctx, clock, "dana@northwind.com", 1)
    assert lead_score(ctx, survivor, actor=READER).total == 20 + 60, (
        "stored state kept all six views"
    )


def test_rescoring_again_counts_no_crossings_and_a_superseded_version_can_come_back(
    ctx: Context, clock: ManualClock
) -> None:
    first = activate(ctx, contract_yaml(threshold=50))
    lead(ctx, "dana@northwind.com", country="US")
    views(ctx, clock, "dana@northwind.com", 2)
    clock.advance(days=90)

    again = rescore_active(ctx, actor=operator("ops"))
    assert (again.leads_scored, again.crossed_up, again.crossed_down) == (1, 0, 0)

    second = activate(ctx, contract_yaml(threshold=70))
    rollback = activate_contract(ctx, first, actor=operator("maria"))
    assert rollback.previous == second
    assert active_contract(ctx)[0] == first  # type: ignore[index]


def test_a_field_change_rescores_fit_even_between_events(ctx: Context, clock: ManualClock) -> None:
    activate(ctx, contract_yaml(threshold=1000))
    lead_id = lead(ctx, "dana@northwind.com", country="DE")
    views(ctx, clock, "dana@northwind.com", 1)
    assert lead_score(ctx, lead_id, actor=READER).fit == 0

    lead(ctx, "dana@northwind.com", country="US")  # same instant as the last scoring
    views(ctx, clock, "dana@northwind.com", 1)
    clock.advance(minutes=1)
    views(ctx, clock, "dana@northwind.com", 1)

    with ctx.read() as connection:
        from baton.store.tables import lead_scores

        stored_fit = connection.execute(
            select(lead_scores.c.fit).where(lead_scores.c.lead_id == lead_id)
        ).scalar_one()
    assert stored_fit == 20
    assert lead_score(ctx, lead_id, actor=READER).total == 20 + 30


# --- who may draft, sign and activate ------------------------------------------------------


def test_a_marketing_user_and_a_sales_manager_sign_and_only_an_admin_activates(
    ctx: Context,
) -> None:
    from baton.domain.reps import RepCreate
    from baton.services.reps import create_rep
    from baton.store.tables import contract_approvals, contracts

    create_rep(ctx, RepCreate(email="ana@lumen.example", name="Ana"), actor=operator("ops"))
    admin = principal_for(ctx, "admin")
    maria = principal_for(ctx, "marketing", email="maria@lumen.example")
    sam = principal_for(ctx, "sales_manager", email="sam@lumen.example")
    ana = principal_for(ctx, "rep", rep_email="ana@lumen.example")

    for drafter in (sam, ana):
        with pytest.raises(Forbidden, match="may not draft a contract version"):
            create_contract(ctx, contract_yaml(), actor=drafter)
    version = create_contract(ctx, contract_yaml(), actor=maria).version

    with pytest.raises(Forbidden, match="admin role may not sign"):
        approve_contract(ctx, version, role="marketing", actor=admin)
    with pytest.raises(Forbidden, match="rep role may not sign"):
        approve_contract(ctx, version, role="sales", actor=ana)
    with pytest.raises(Forbidden, match="only a sales_manager user signs for sales"):
        approve_contract(ctx, version, role="sales", actor=maria)
    with pytest.raises(Forbidden, match="only a marketing user signs for marketing"):
        approve_contract(ctx, version, role="marketing", actor=sam)
    approve_contract(ctx, version, role="marketing", actor=maria)
    signed = approve_contract(ctx, version, role="sales", actor=sam)
    assert signed.status == "approved"
    assert signed.approvals == {"marketing": maria.name, "sales": sam.name}

    for activator in (maria, sam, ana):
        with pytest.raises(Forbidden, match="may not activate"):
            activate_contract(ctx, version, actor=activator)
        with pytest.raises(Forbidden, match="may not activate"):
            rescore_active(ctx, actor=activator)
    activate_contract(ctx, version, actor=admin)

    assert [v.status for v in list_contracts(ctx, actor=ana)] == ["active"], "everyone reads"
    with ctx.read() as connection:
        stored = dict(
            connection.execute(
                select(contract_approvals.c.role, contract_approvals.c.actor_user_id)
            ).all()
        )
        activated_by = connection.execute(select(contracts.c.activated_by)).scalar_one()
    assert stored == {"marketing": maria.user_id, "sales": sam.user_id}
    assert activated_by == admin.name


def test_one_person_cannot_sign_both_sides_even_after_a_change_of_role(ctx: Context) -> None:
    """The two signatures are compared by user id: the same person under another role
    (and a new token, so another text name) is still the same signer."""
    from baton.domain.access import Role
    from baton.domain.users import TokenCreate, UserUpdate
    from baton.services.users import create_token, find_user, token_principal, update_user

    maria = principal_for(ctx, "marketing", email="maria@lumen.example")
    version = create_contract(ctx, contract_yaml(), actor=maria).version
    approve_contract(ctx, version, role="marketing", actor=maria)

    user = find_user(ctx, "maria@lumen.example", actor=operator("ops"))
    update_user(ctx, user.id, UserUpdate(role=Role.SALES_MANAGER), actor=operator("ops"))
    _, secret = create_token(
        ctx,
        TokenCreate(name="after the move", scopes=["admin"], user_email=user.email),
        actor=operator("ops"),
    )
    moved = token_principal(ctx, secret)
    assert moved is not None
    assert (moved.role, moved.user_id) == (Role.SALES_MANAGER, maria.user_id)
    assert moved.name != maria.name

    with pytest.raises(Conflict, match="two different approvers"):
        approve_contract(ctx, version, role="sales", actor=moved)
    assert approve_contract(ctx, version, role="sales", actor=operator("sam")).status == (
        "approved"
    )


def test_the_local_operator_is_the_same_signer_as_the_user_of_that_email(ctx: Context) -> None:
    """A signature made on the command line in someone's name counts as theirs."""
    sam = principal_for(ctx, "sales_manager", email="sam@lumen.example")
    version = create_contract(ctx, contract_yaml(), actor=operator("ops")).version
    approve_contract(ctx, version, role="marketing", actor=operator("Sam@Lumen.example"))

    with pytest.raises(Conflict, match="two different approvers"):
        approve_contract(ctx, version, role="sales", actor=sam)


def test_the_diff_between_stored_versions_shows_raci_changes(ctx: Context) -> None:
    example = yaml.safe_load(EXAMPLE_CONTRACT.read_text())
    first = create_contract(ctx, yaml.safe_dump(example, sort_keys=False), actor=READER)
    example["raci"]["verdict"]["accountable"] = "revenue_lead"
    example["raci"]["verdict"]["consulted"] = ["marketing", "revops"]
    second = create_contract(ctx, yaml.safe_dump(example, sort_keys=False), actor=READER)
    del example["raci"]
    third = create_contract(ctx, yaml.safe_dump(example, sort_keys=False), actor=READER)

    assert [c.text for c in diff_versions(ctx, first.version, second.version, actor=READER)] == [
        "verdict: accountable sales_manager → revenue_lead",
        "verdict: consulted added revops",
    ]
    assert [
        (c.section, c.text) for c in diff_versions(ctx, second.version, third.version, actor=READER)
    ] == [("raci", "RACI removed (now not agreed)")]
    assert first.warnings == () and first.spec is not None and first.spec.raci is not None
    assert third.warnings and third.warnings[0].startswith("raci: not agreed yet")
    stored = {v.version: v for v in list_contracts(ctx, actor=READER)}
    assert stored[third.version].spec is not None
    assert stored[third.version].spec.raci is None


def test_the_database_holds_at_most_one_active_version(ctx: Context) -> None:
    """With no version active, two activations at the same moment had no row to lock
    and both committed (every scoring write then read two active contracts): the
    database itself now refuses a second active version, which the API answers as a
    409 to retry and the CLI as "run the command again"."""
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from baton.store.tables import contracts

    first = activate(ctx, contract_yaml())
    second = create_contract(ctx, contract_yaml(threshold=70), actor=operator("maria")).version
    with pytest.raises(IntegrityError), ctx.write() as connection:
        connection.execute(
            update(contracts).where(contracts.c.version == second).values(status="active")
        )
    assert active_contract(ctx)[0] == first  # type: ignore[index]


def _approved(ctx: Context, threshold: int) -> int:
    version = create_contract(ctx, contract_yaml(threshold), actor=operator("maria")).version
    approve_contract(ctx, version, role="marketing", actor=operator("maria"))
    approve_contract(ctx, version, role="sales", actor=operator("sam"))
    return version


def _activate_while_another_commits(
    ctx: Context, first: int, second: int
) -> tuple[list[Any], dict[str, BaseException]]:
    """Activate ``second`` while another transaction, which has made ``first`` the
    active version (superseding any other), holds its locks; that one then commits."""
    from sqlalchemy import update

    from baton.store.tables import contracts

    holder = ctx.engine.connect()
    transaction = holder.begin()
    reports: list[Any] = []
    try:
        holder.execute(
            update(contracts).where(contracts.c.status == "active").values(status="superseded")
        )
        holder.execute(
            update(contracts).where(contracts.c.version == first).values(status="active")
        )
        thread, errors = _in_thread(
            lambda: reports.append(activate_contract(ctx, second, actor=operator("maria")))
        )
        _wait_until_blocked(ctx, thread)
        transaction.commit()
    finally:
        holder.close()
    thread.join(60)
    return reports, errors


def _active_versions(ctx: Context) -> list[int]:
    from baton.store.tables import contracts

    with ctx.read() as connection:
        return list(
            connection.execute(
                select(contracts.c.version).where(contracts.c.status == "active")
            ).scalars()
        )


@pytest.mark.parametrize("backend", POSTGRES)
def test_two_first_activations_at_once_leave_one_active_and_the_other_a_conflict(
    ctx: Context,
) -> None:
    first, second = _approved(ctx, 50), _approved(ctx, 60)
    reports, errors = _activate_while_another_commits(ctx, first, second)
    assert reports == [] and isinstance(errors.get("error"), Conflict), errors
    assert str(errors["error"]) == (
        f"version {first} was activated at the same moment; nothing was saved: "
        f"activate version {second} again if it should replace it"
    )
    assert _active_versions(ctx) == [first]


@pytest.mark.parametrize("backend", POSTGRES)
def test_an_activation_that_raced_another_is_a_conflict_and_tried_again_says_what_it_replaced(
    ctx: Context,
) -> None:
    """Another activation committed while this one waited: this one never reports
    "replaced nothing" over a version it superseded (it read none before the other
    committed: no crossings compared, no "(was N)"); it fails as a conflict, and tried
    again it supersedes the other's version and says so."""
    older = _approved(ctx, 40)
    activate_contract(ctx, older, actor=operator("maria"))
    first, second = _approved(ctx, 50), _approved(ctx, 60)
    reports, errors = _activate_while_another_commits(ctx, first, second)
    assert reports == [] and isinstance(errors.get("error"), Conflict), errors
    assert f"version {first} was activated at the same moment" in str(errors["error"])
    assert _active_versions(ctx) == [first]
    assert activate_contract(ctx, second, actor=operator("maria")).previous == first
    assert _active_versions(ctx) == [second]
