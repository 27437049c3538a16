"""A small world for the web app's tests (page tests and browser tests): one user per
role, two teams with a rep each, the example contract active, a few handoffs.

Small on purpose: a page test or a browser run builds it in well under a second.
Everything is made through the services, as an operator would.

* ``na`` (US leads) managed by Sam, with Ana; ``emea`` (GB, DE, FR, NL) with Ben;
* users: admin, marketing (Maria), sales_manager (Sam, of both teams), rep Ana,
  rep Ben; all with the password :data:`PASSWORD`;
* :func:`hand_raise` makes a lead ask for a demo: a handoff at once, to Ana for a US
  lead, to Ben for a GB one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from argon2 import PasswordHasher

from baton.domain.access import Role, operator
from baton.domain.activities import ActivityCreate
from baton.domain.leads import LeadCreate
from baton.domain.reps import RepCreate, TeamCreate
from baton.domain.users import UserCreate
from baton.services import users as user_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.demo import sign_demo_contract
from baton.services.handoffs import list_handoffs
from baton.services.leads import capture_lead
from baton.services.reps import create_rep, create_team
from baton.services.users import add_user

EXAMPLE = Path(__file__).parents[1] / "contracts" / "example.yaml"
PASSWORD = "correct horse battery staple"
ANA, BEN = "ana@lumen.example", "ben@lumen.example"
USERS = {
    "admin": "ops@lumen.example",
    "marketing": "maria@lumen.example",
    "sales_manager": "sam@lumen.example",
    "rep": ANA,
    "other_rep": BEN,
}
"""The email of each role's user (``other_rep``: the second rep, Ben)."""

OPS = operator("test")


@dataclass
class World:
    users: dict[str, str] = field(default_factory=lambda: dict(USERS))
    handoffs: dict[str, list[int]] = field(default_factory=dict)
    """Open handoff ids by rep email."""
    leads: dict[str, list[int]] = field(default_factory=dict)
    """The leads of those handoffs, in the same order."""

    def first(self, rep: str = ANA) -> int:
        return self.handoffs[rep][0]


@contextmanager
def cheap_passwords() -> Iterator[None]:
    """Hash the world's passwords with argon2's cheapest parameters (the verification
    reads them from the hash): a sign-in then costs a millisecond, not a fraction of a
    second on a busy test machine. Tests only."""
    saved = user_service._hasher
    user_service._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        yield
    finally:
        user_service._hasher = saved


def build_world(ctx: Context, *, handoffs_each: int = 2) -> World:
    with cheap_passwords():
        return _build_world(ctx, handoffs_each=handoffs_each)


def _build_world(ctx: Context, *, handoffs_each: int) -> World:
    create_team(ctx, TeamCreate(name="na", manager_email=USERS["sales_manager"]), actor=OPS)
    create_team(ctx, TeamCreate(name="emea", manager_email=USERS["sales_manager"]), actor=OPS)
    hours = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    create_rep(
        ctx,
        RepCreate(email=ANA, name="Ana Silva", team="na", timezone="America/New_York",
                  working_hours=hours),
        actor=OPS,
    )  # fmt: skip
    create_rep(
        ctx,
        RepCreate(email=BEN, name="Ben Okafor", team="emea", timezone="Europe/London",
                  working_hours=hours),
        actor=OPS,
    )  # fmt: skip
    zones = {"rep": "America/New_York", "other_rep": "Europe/London"}
    for key, email in USERS.items():
        role = Role.REP if key == "other_rep" else Role(key)
        add_user(
            ctx,
            UserCreate(
                email=email,
                display_name=email.split("@")[0].title(),
                role=role,
                rep_email=email if role is Role.REP else None,
                teams=["na", "emea"] if role is Role.SALES_MANAGER else [],
                timezone=zones.get(key, "UTC"),
            ),
            actor=OPS,
            password=PASSWORD,
        )
    sign_demo_contract(ctx, EXAMPLE.read_text(encoding="utf-8"))
    world = World()
    for _ in range(handoffs_each):
        hand_raise(ctx, country="US")
        hand_raise(ctx, country="GB")
    for rep in (ANA, BEN):
        open_ones = list_handoffs(ctx, actor=OPS, rep_email=rep, status=["assigned", "accepted"])
        world.handoffs[rep] = [h.id for h in open_ones]
        world.leads[rep] = [h.lead_id for h in open_ones]
    return world


def hand_raise(ctx: Context, *, country: str = "US", name: str | None = None) -> int:
    """A decision-maker asks for a demo: an MQL at once, handed off; returns the
    handoff's id."""
    name = name or f"Dana {uuid.uuid4().hex[:6]}"
    email = f"{name.lower().replace(' ', '.')}@northwind.example.com"
    lead = capture_lead(
        ctx,
        LeadCreate.model_validate(
            {
                "email": email,
                "first_name": name.split()[0],
                "last_name": name.split()[-1],
                "title": "VP Operations",
                "company": "Northwind & Co",
                "country": country,
                "attributes": {"employees": 420},
            },
            context={"default_region": "US"},
        ),
        actor=operator("marketing"),
    ).lead
    ingest_activity(
        ctx,
        ActivityCreate.model_validate(
            {"email": email, "type": "demo_request", "occurred_at": ctx.clock.now()}
        ),
        actor=operator("marketing"),
    )
    [handoff] = list_handoffs(ctx, actor=OPS, lead_id=lead.id)
    return handoff.id
