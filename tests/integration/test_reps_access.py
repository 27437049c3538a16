"""Who may see and change teams, reps, absences, accounts and webhooks, called as the
use cases are (on SQLite and PostgreSQL): a rep reaches only their own record and
of it only their profile, a sales manager their teams' reps but not who manages them,
admins everything; a rep out of reach is missing (404), never forbidden, so ids and
emails cannot be probed (OWASP API1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from tests.conftest import principal_for

from baton.domain.access import Principal, operator
from baton.domain.errors import Forbidden, NotFound
from baton.domain.reps import AbsenceCreate, AccountCreate, RepCreate, RepUpdate, TeamCreate
from baton.services.context import Context
from baton.services.reps import (
    add_absence,
    create_rep,
    create_team,
    find_rep,
    get_rep,
    list_accounts,
    list_reps,
    list_teams,
    remove_absence,
    update_rep,
    upsert_account,
)
from baton.services.webhooks import (
    create_endpoint,
    disable_endpoint,
    get_endpoint,
    list_deliveries,
    list_endpoints,
)
from baton.store.tables import rep_absences

ANA, BEN, EVE = "ana@lumen.example", "ben@lumen.example", "eve@lumen.example"
SAM = "sam@lumen.example"
OPS = operator("ops")


@pytest.fixture
def floor(ctx: Context) -> dict[str, int]:
    """Team na (ana, ben) and team emea (eve); ana owns northwind.com, eve acme.com."""
    create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OPS)
    create_team(ctx, TeamCreate(name="emea"), actor=OPS)
    ids = {
        email: create_rep(ctx, RepCreate(email=email, name=email[:3], team=team), actor=OPS).id
        for email, team in ((ANA, "na"), (BEN, "na"), (EVE, "emea"))
    }
    upsert_account(ctx, AccountCreate(domain="northwind.com", owner_email=ANA), actor=OPS)
    upsert_account(ctx, AccountCreate(domain="acme.com", owner_email=EVE), actor=OPS)
    return ids


def absence(ctx: Context) -> AbsenceCreate:
    start = ctx.clock.now() + timedelta(days=1)
    return AbsenceCreate(starts_at=start, ends_at=start + timedelta(days=2), note="holiday")


def test_a_rep_sees_and_changes_only_their_own_profile(ctx: Context, floor: dict[str, int]) -> None:
    ana = principal_for(ctx, "rep", rep_email=ANA)
    ben_id = floor[BEN]
    bens_absence = add_absence(ctx, ben_id, absence(ctx), actor=OPS).absences[0].id

    assert [r.email for r in list_reps(ctx, actor=ana)] == [ANA]
    assert [t.name for t in list_teams(ctx, actor=ana)] == ["na"]
    assert [a.domain for a in list_accounts(ctx, actor=ana)] == ["northwind.com"]
    assert get_rep(ctx, floor[ANA], actor=ana).email == ANA
    assert find_rep(ctx, ANA.upper(), actor=ana).id == floor[ANA]
    for reach_out in (
        lambda: get_rep(ctx, ben_id, actor=ana),
        lambda: find_rep(ctx, BEN, actor=ana),
        lambda: update_rep(ctx, ben_id, RepUpdate(status="away"), actor=ana),
        lambda: add_absence(ctx, ben_id, absence(ctx), actor=ana),
        lambda: remove_absence(ctx, ben_id, bens_absence, actor=ana),
    ):
        with pytest.raises(NotFound, match="does not exist"):
            reach_out()
    with pytest.raises(NotFound) as missing:
        get_rep(ctx, 999_999, actor=ana)
    with pytest.raises(NotFound) as hidden:
        get_rep(ctx, ben_id, actor=ana)
    assert missing.value.detail.replace("999999", "N") == hidden.value.detail.replace(
        str(ben_id), "N"
    ), "another rep's record and a missing one are refused alike"

    away = update_rep(ctx, floor[ANA], RepUpdate(status="away", name="Ana S."), actor=ana)
    assert (away.status, away.name) == ("away", "Ana S.")
    for grab in (RepUpdate(capacity=99), RepUpdate(countries=["US"]), RepUpdate(team="emea")):
        with pytest.raises(Forbidden, match="ask your manager"):
            update_rep(ctx, floor[ANA], grab, actor=ana)
    assert get_rep(ctx, floor[ANA], actor=OPS).capacity == 20

    mine = add_absence(ctx, floor[ANA], absence(ctx), actor=ana).absences[0]
    with ctx.read() as connection:
        created_by = connection.execute(
            select(rep_absences.c.created_by).where(rep_absences.c.id == mine.id)
        ).scalar_one()
    assert created_by == ana.name
    assert remove_absence(ctx, floor[ANA], mine.id, actor=ana).absences == []
    with pytest.raises(Forbidden, match="rep role may not"):
        create_rep(ctx, RepCreate(email="new@lumen.example", name="New"), actor=ana)
    with pytest.raises(Forbidden, match="rep role may not"):
        upsert_account(ctx, AccountCreate(domain="grab.com", owner_email=ANA), actor=ana)


def test_a_manager_changes_their_teams_reps_but_not_who_manages_them(
    ctx: Context, floor: dict[str, int]
) -> None:
    sam = principal_for(ctx, "sales_manager", email=SAM, teams=("na",))

    assert {r.email for r in list_reps(ctx, actor=sam)} == {ANA, BEN, EVE}, "managers read all"
    assert update_rep(ctx, floor[BEN], RepUpdate(capacity=5), actor=sam).capacity == 5
    assert add_absence(ctx, floor[ANA], absence(ctx), actor=sam).absences
    with pytest.raises(NotFound):
        update_rep(ctx, floor[EVE], RepUpdate(capacity=5), actor=sam)
    with pytest.raises(NotFound):
        add_absence(ctx, floor[EVE], absence(ctx), actor=sam)
    for move in (RepUpdate(team="emea"), RepUpdate(manager_email="mia@lumen.example")):
        with pytest.raises(Forbidden, match="only an admin changes who manages a rep"):
            update_rep(ctx, floor[BEN], move, actor=sam)
    assert get_rep(ctx, floor[BEN], actor=sam).team == "na"

    moved = upsert_account(ctx, AccountCreate(domain="northwind.com", owner_email=BEN), actor=sam)
    assert moved.owner_email == BEN
    for taken in (
        AccountCreate(domain="acme.com", owner_email=BEN),  # pulling emea's account in
        AccountCreate(domain="northwind.com", owner_email=EVE),  # pushing work out
        AccountCreate(domain="acme.com"),  # orphaning emea's account
    ):
        with pytest.raises(NotFound, match="does not exist"):
            upsert_account(ctx, taken, actor=sam)
    owners = {a.domain: a.owner_email for a in list_accounts(ctx, actor=OPS)}
    assert owners == {"northwind.com": BEN, "acme.com": EVE}
    with pytest.raises(Forbidden, match="sales_manager role may not create teams and reps"):
        create_team(ctx, TeamCreate(name="apac"), actor=sam)


def test_marketing_reads_the_sales_floor_and_admins_change_it(
    ctx: Context, floor: dict[str, int]
) -> None:
    maria = principal_for(ctx, "marketing")
    admin = principal_for(ctx, "admin")

    assert len(list_reps(ctx, actor=maria)) == 3
    assert [a.domain for a in list_accounts(ctx, actor=maria)] == ["acme.com", "northwind.com"]
    with pytest.raises(Forbidden, match="marketing role may not change a rep"):
        update_rep(ctx, floor[ANA], RepUpdate(status="away"), actor=maria)
    with pytest.raises(Forbidden, match="marketing role may not assign accounts"):
        upsert_account(ctx, AccountCreate(domain="acme.com", owner_email=ANA), actor=maria)

    moved = update_rep(ctx, floor[EVE], RepUpdate(team="na", capacity=3), actor=admin)
    assert (moved.team, moved.capacity) == ("na", 3)
    assert create_team(ctx, TeamCreate(name="apac"), actor=admin).name == "apac"


@pytest.mark.parametrize("role", ["marketing", "sales_manager", "rep"])
def test_only_admins_manage_webhooks(ctx: Context, floor: dict[str, int], role: str) -> None:
    admin = principal_for(ctx, "admin")
    other: Principal = principal_for(ctx, role, **({"rep_email": ANA} if role == "rep" else {}))
    endpoint, secret = create_endpoint(
        ctx, url="https://hooks.example.com/baton", events=["*"], actor=admin
    )
    assert endpoint.created_by == admin.name and secret

    for attempt in (
        lambda: create_endpoint(ctx, url="https://evil.example.com", events=["*"], actor=other),
        lambda: list_endpoints(ctx, actor=other),
        lambda: get_endpoint(ctx, endpoint.id, actor=other),
        lambda: list_deliveries(ctx, endpoint.id, actor=other),
        lambda: disable_endpoint(ctx, endpoint.id, actor=other),
    ):
        with pytest.raises(Forbidden, match="may not manage webhooks"):
            attempt()
    assert [e.active for e in list_endpoints(ctx, actor=admin)] == [True]
    assert disable_endpoint(ctx, endpoint.id, actor=admin).active is False
