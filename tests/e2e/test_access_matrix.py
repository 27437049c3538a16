"""Every route in the OpenAPI schema × every kind of caller: allowed or denied.

The table below is the access rules written out from the callers' side, route by
route, independent of ``baton.domain.access``: a route added without a line here
fails the test, and so does a route whose answer disagrees with its line.

A caller is *denied* when the answer is 401 (no valid credentials), 403 (the role or
the token's scopes may not) or 404 (the object is outside their reach: another rep's
handoff looks like a missing one). Anything else (200, 201, 204, 409, 422...) means
the request got past access. Every request is valid for the route, and objects that a
request consumes (a handoff to accept, an absence to remove, a token to revoke) are
made afresh for each caller, so a denial can only come from access.

The floor: team ``na`` (managed by Sam) with Ana, team ``emea`` with Emil; every
object addressed by id belongs to Ana (her handoff, its lead, her absences), so the
rep role sees "own" objects and the manager "team" objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import bearer, token_for

from baton.api.app import create_app
from baton.domain.access import operator
from baton.domain.activities import ActivityCreate
from baton.domain.clock import ManualClock
from baton.domain.leads import LeadCreate
from baton.domain.reps import AbsenceCreate, RepCreate, TeamCreate
from baton.domain.users import IntakeKeyCreate, TokenCreate, UserCreate
from baton.services import contracts as contract_service
from baton.services import handoffs as handoff_service
from baton.services import reps as rep_service
from baton.services import users as user_service
from baton.services import webhooks as webhook_service
from baton.services.activities import ingest_activity
from baton.services.context import Context
from baton.services.leads import capture_lead

EXAMPLE = Path(__file__).parents[2] / "contracts" / "example.yaml"
ANA, BEN, EMIL = "ana@lumen.example", "ben@lumen.example", "emil@lumen.example"
SAM = "sam@lumen.example"
OP = operator("matrix")

ROLES = ("admin", "marketing", "sales_manager", "rep")
CALLERS = (
    *ROLES,
    "marketing (session)",
    "intake key",
    "anonymous",
    "revoked token",
    "expired token",
)
LIKE = {"marketing (session)": "marketing"}
"""Callers whose rights are a role's: a session cookie (with its CSRF token) acts as
the person, so it may do what their role may, plus change their password."""
EVERYONE = frozenset(ROLES)
PUBLIC = frozenset(CALLERS)
ADMIN = frozenset({"admin"})
MARKETING = frozenset({"admin", "marketing"})
SALES = frozenset({"admin", "sales_manager", "rep"})
MANAGERS = frozenset({"admin", "sales_manager"})
REPORTS = frozenset({"admin", "marketing", "sales_manager"})
SIGNERS = frozenset({"marketing"})


class Floor:
    """The objects every request points at, and makers of fresh ones."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        rep_service.create_team(ctx, TeamCreate(name="na", manager_email=SAM), actor=OP)
        rep_service.create_team(ctx, TeamCreate(name="emea"), actor=OP)
        for email, team in ((ANA, "na"), (BEN, "na"), (EMIL, "emea")):
            rep_service.create_rep(
                ctx,
                RepCreate(
                    email=email,
                    name=email.split("@")[0].title(),
                    team=team,
                    working_hours={d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                    capacity=1000,
                    status="away" if email == BEN else "available",
                ),
                actor=OP,
            )
        self.ana_id = rep_service.find_rep(ctx, ANA, actor=OP).id
        version = contract_service.create_contract(ctx, EXAMPLE.read_text(), actor=OP).version
        contract_service.approve_contract(ctx, version, role="marketing", actor=operator("m"))
        contract_service.approve_contract(ctx, version, role="sales", actor=operator("s"))
        contract_service.activate_contract(ctx, version, actor=OP)
        self.version = version
        self.draft = contract_service.create_contract(ctx, EXAMPLE.read_text(), actor=OP).version
        self.count = 0
        self.lead_id, self.handoff_id = self.ana_handoff()
        self.victim = user_service.add_user(
            ctx,
            UserCreate(email="victim@example.com", display_name="Victim", role="marketing"),
            actor=OP,
        )[0].id
        user_service.add_user(
            ctx,
            UserCreate(email="known@example.com", display_name="Known", role="rep", rep_email=EMIL),
            actor=OP,
            password=KNOWN_PASSWORD,
        )
        user_service.add_user(
            ctx,
            UserCreate(email="session@example.com", display_name="Sess", role="marketing"),
            actor=OP,
            password=KNOWN_PASSWORD,
        )

    def lead(self, **fields: Any) -> int:
        self.count += 1
        data = LeadCreate.model_validate(
            {"email": f"lead{self.count}@northwind{self.count}.example.com", **fields}
        )
        return capture_lead(self.ctx, data, actor=OP).lead.id

    def ana_handoff(self) -> tuple[int, int]:
        """A US hand-raise: routed to Ana, the only rep of ``na``."""
        lead_id = self.lead(first_name="Dana", country="US")
        email = f"lead{self.count}@northwind{self.count}.example.com"
        ingest_activity(
            self.ctx,
            ActivityCreate(email=email, type="demo_request", occurred_at=self.ctx.clock.now()),
            actor=OP,
        )
        found = handoff_service.list_handoffs(self.ctx, lead_id=lead_id, actor=OP)
        assert found and found[0].rep_email == ANA, found
        return lead_id, found[0].id

    def queued(self) -> int:
        """A US company of 5,000 asks for a demo: the enterprise pool has no reps, so
        the handoff waits in the queue (for a manager to give to Ana)."""
        lead_id = self.lead(first_name="Cleo", country="US", attributes={"employees": 5000})
        email = f"lead{self.count}@northwind{self.count}.example.com"
        ingest_activity(
            self.ctx,
            ActivityCreate(email=email, type="demo_request", occurred_at=self.ctx.clock.now()),
            actor=OP,
        )
        [found] = handoff_service.list_handoffs(self.ctx, lead_id=lead_id, actor=OP)
        assert found.status == "queued", found
        return found.id

    def accepted(self) -> int:
        handoff_id = self.ana_handoff()[1]
        handoff_service.accept_handoff(self.ctx, handoff_id, actor=OP)
        return handoff_id

    def qualified(self) -> int:
        handoff_id = self.accepted()
        handoff_service.qualify_handoff(self.ctx, handoff_id, fields=QUALIFY, actor=OP)
        return handoff_id

    def absence(self) -> int:
        start = self.ctx.clock.now() + timedelta(days=30 + self.count)
        self.count += 1
        rep = rep_service.add_absence(
            self.ctx,
            self.ana_id,
            AbsenceCreate(starts_at=start, ends_at=start + timedelta(days=1)),
            actor=OP,
        )
        return rep.absences[-1].id

    def duplicate(self) -> int:
        self.count += 1
        phone = f"+1415555{self.count:04d}"
        first = self.lead(first_name="Robin", last_name="Meyer", phone=phone)
        data = LeadCreate.model_validate(
            {
                "email": f"robin.meyer{self.count}@gmail.com",
                "first_name": "Robin",
                "last_name": "Meyer",
                "phone": phone,
            }
        )
        capture_lead(self.ctx, data, actor=OP)
        from baton.services.merge import list_duplicates
        from baton.services.worker import check_duplicates

        check_duplicates(self.ctx)

        for candidate in list_duplicates(self.ctx, actor=OP):
            if first in (candidate.lead_id, candidate.other_lead_id):
                return candidate.id
        raise AssertionError("no candidate")

    def victim_token(self) -> int:
        token, _ = user_service.create_token(
            self.ctx,
            TokenCreate(name="victim", scopes=["leads:read"], user_email="victim@example.com"),
            actor=OP,
        )
        return token.id

    def intake_key(self) -> int:
        self.count += 1
        key, _ = user_service.add_intake_key(
            self.ctx, IntakeKeyCreate(name=f"site{self.count}", source="web"), actor=OP
        )
        return key.id

    def webhook(self) -> int:
        endpoint, _ = webhook_service.create_endpoint(
            self.ctx, url="https://hooks.example.com/baton", events=["*"], secret=None, actor=OP
        )
        return endpoint.id

    def failed_message(self) -> int:
        """An email the worker gave up on (to read or retry)."""
        from sqlalchemy import func, select, update

        from baton.services.outbox import enqueue_email
        from baton.store.tables import outbox

        with self.ctx.write() as connection:
            enqueue_email(connection, topic="sla.remind", to=ANA, now=self.ctx.clock.now())
            message_id = int(connection.execute(select(func.max(outbox.c.id))).scalar_one())
            connection.execute(
                update(outbox)
                .where(outbox.c.id == message_id)
                .values(status="failed", attempts=8, last_error="550 no such user")
            )
        return message_id


KNOWN_PASSWORD = "a password everyone knows"
QUALIFY = {"budget": "40k", "authority": "VP", "need": "reports", "timing": "Q3"}


@dataclass(frozen=True)
class Case:
    """Who may call an operation, and how to make a valid request for it."""

    allowed: frozenset[str]
    ids: Callable[[Floor], dict[str, Any]] = field(default=lambda f: {})
    body: Callable[[Floor], Any] | None = None
    query: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None


def lead(f: Floor) -> dict[str, Any]:
    return {"lead_id": f.lead_id}


def handoff(f: Floor) -> dict[str, Any]:
    return {"handoff_id": f.handoff_id}


def shared_filter(f: Floor) -> dict[str, Any]:
    """A fresh filter the marketing user Victim saved and shared (readable by all,
    deletable by Victim and admins only)."""
    from baton.domain.access import Principal, Role
    from baton.services.saved_filters import create_saved_filter

    f.count += 1
    victim = Principal(kind="user", name="Victim", role=Role.MARKETING, user_id=f.victim)
    made = create_saved_filter(
        f.ctx, {"name": f"shared {f.count}", "query": {"q": "dana"}, "shared": True}, actor=victim
    )
    return {"filter_id": made.id}


def nurture_enrollment(f: Floor) -> dict[str, Any]:
    """A fresh active nurture enrollment of a new lead with a lawful basis."""
    from baton.services.nurture import Selection, enroll_leads

    lead_id = f.lead(consent_basis="consent")
    done = enroll_leads(f.ctx, Selection("not-ready", lead_ids=(lead_id,)), actor=OP)
    return {"enrollment_id": done.enrollment_ids[0]}


def new_filter_name(f: Floor) -> dict[str, Any]:
    f.count += 1
    return {"name": f"mine {f.count}", "query": {"q": "dana", "sort": "score"}}


def team_na(f: Floor) -> dict[str, Any]:
    [na] = [t for t in rep_service.list_teams(f.ctx, actor=OP) if t.name == "na"]
    return {"team_id": na.id}


def ana_channel(f: Floor) -> dict[str, Any]:
    """A fresh Slack channel of Ana's (to turn off or remove)."""
    from baton.services.chat import add_channel

    channel, _ = add_channel(f.ctx, kind="slack", url=CHAT_URL, rep_id=f.ana_id, actor=OP)
    return {"channel_id": channel.id}


def intake_endpoint(f: Floor) -> dict[str, Any]:
    """A fresh generic inbound endpoint (to read, change or deactivate)."""
    from baton.services.intake import add_endpoint

    f.count += 1
    name = f"form-{f.count}"
    spec = {"name": name, "kind": "generic", "source": "web", "mapping": {"email": "email"}}
    add_endpoint(f.ctx, spec, actor=OP)
    return {"name": name}


def intake_request(f: Floor) -> dict[str, Any]:
    """A logged hook request (to read)."""
    from baton.domain.intake import Delivery
    from baton.services.intake import receive

    name = intake_endpoint(f)["name"]
    delivery = Delivery(b"{}", "application/json", {}, {}, f.ctx.clock.now())
    return {"request_id": receive(f.ctx, name, delivery).request_id}


def model_draft(f: Floor) -> dict[str, Any]:
    """A fresh draft scoring model (tests/model_helpers.py)."""
    from tests.model_helpers import store_tiny_model

    return {"version": store_tiny_model(f.ctx, kind="naive_bayes", status="draft")}


CHAT_URL = "https://hooks.slack.com/services/T0/B0/matrixmatrixmatrix"
PERIOD = {"from": "2026-01-01", "to": "2026-04-01"}

TABLE: dict[str, Case] = {
    "health": Case(PUBLIC),
    "ready": Case(PUBLIC),
    "get_status": Case(ADMIN),
    "login": Case(
        PUBLIC,
        body=lambda f: {"email": "known@example.com", "password": KNOWN_PASSWORD},
    ),
    "logout": Case(PUBLIC),
    "whoami": Case(EVERYONE | {"marketing (session)", "intake key"}),
    "change_password": Case(
        frozenset({"marketing (session)"}),  # a person with a session only, never a token
        body=lambda f: {"current_password": "x", "new_password": "a long new password"},
    ),
    "list_users": Case(ADMIN),
    "create_user": Case(
        ADMIN,
        body=lambda f: {
            "email": f"new{f.count}-{id(f) % 1000}@example.com",
            "display_name": "New",
            "role": "marketing",
        },
    ),
    "get_user": Case(ADMIN, ids=lambda f: {"user_id": f.victim}),
    "update_user": Case(
        ADMIN, ids=lambda f: {"user_id": f.victim}, body=lambda f: {"display_name": "Vic"}
    ),
    "reset_password": Case(ADMIN, ids=lambda f: {"user_id": f.victim}),
    "list_tokens": Case(EVERYONE),
    "create_token": Case(EVERYONE, body=lambda f: {"name": "mine", "scopes": ["leads:read"]}),
    "revoke_token": Case(ADMIN, ids=lambda f: {"token_id": f.victim_token()}),
    "list_intake_keys": Case(ADMIN),
    "create_intake_key": Case(
        ADMIN, body=lambda f: {"name": f"key{f.count}x{len(f.__dict__)}", "source": "web"}
    ),
    "revoke_intake_key": Case(ADMIN, ids=lambda f: {"key_id": f.intake_key()}),
    "update_intake_key": Case(
        ADMIN, ids=lambda f: {"key_id": f.intake_key()}, body=lambda f: {"rate_per_minute": 30}
    ),
    "capture_lead": Case(
        MARKETING | {"intake key"}, body=lambda f: {"email": "new.lead@example.org"}
    ),
    "list_leads": Case(EVERYONE),
    "search_leads": Case(EVERYONE, query={"q": "dana", "sort": "score"}),
    "list_saved_filters": Case(EVERYONE),
    "create_saved_filter": Case(EVERYONE, body=new_filter_name),
    "get_saved_filter": Case(EVERYONE, ids=shared_filter),
    "run_saved_filter": Case(EVERYONE, ids=shared_filter),
    "delete_saved_filter": Case(ADMIN, ids=shared_filter),
    "get_lead": Case(EVERYONE, ids=lead),
    "change_stage": Case(
        frozenset({"admin", "marketing", "sales_manager"}),
        ids=lambda f: {"lead_id": f.ana_handoff()[0]},
        body=lambda f: {"to_stage": "nurture", "reason": "not this quarter"},
    ),
    "lead_timeline": Case(EVERYONE, ids=lead),
    "add_note": Case(EVERYONE, ids=lead, body=lambda f: {"body": "called, left a message"}),
    "add_tag": Case(EVERYONE, ids=lead, body=lambda f: {"tag": "hot"}),
    "remove_tag": Case(EVERYONE, ids=lambda f: {"lead_id": f.lead_id, "tag": "hot"}),
    "merge_leads": Case(
        MARKETING,
        ids=lambda f: {"lead_id": f.lead()},
        body=lambda f: {"merged_lead_id": f.lead()},
    ),
    "lead_score": Case(EVERYONE, ids=lead),
    "lead_prep": Case(EVERYONE, ids=lead),
    "tick_prep": Case(EVERYONE, ids=lambda f: {"lead_id": f.lead_id, "item": "use_case_noted"}),
    "untick_prep": Case(EVERYONE, ids=lambda f: {"lead_id": f.lead_id, "item": "use_case_noted"}),
    "ingest_activity": Case(
        MARKETING | {"intake key"},
        body=lambda f: {
            "email": "someone@example.org",
            "type": "page_view",
            "occurred_at": f.ctx.clock.now().isoformat(),
        },
    ),
    "ingest_activity_batch": Case(
        MARKETING | {"intake key"},
        body=lambda f: {
            "activities": [
                {
                    "email": "someone@example.org",
                    "type": "page_view",
                    "occurred_at": f.ctx.clock.now().isoformat(),
                }
            ]
        },
    ),
    # Intake keys may not: the answer shows the lead and its handoff (baton.services.calls).
    "log_inbound_call": Case(MARKETING, body=lambda f: {"phone": "+1 415 555 0177"}),
    "list_duplicates": Case(MARKETING),
    "dismiss_duplicate": Case(MARKETING, ids=lambda f: {"candidate_id": f.duplicate()}),
    "dismiss_duplicates": Case(MARKETING, body=lambda f: {"ids": [f.duplicate()]}),
    "list_contracts": Case(EVERYONE),
    "create_contract": Case(MARKETING, body=lambda f: {"body": EXAMPLE.read_text()}),
    "get_contract": Case(EVERYONE, ids=lambda f: {"version": f.version}),
    "approve_contract": Case(
        SIGNERS, ids=lambda f: {"version": f.draft}, body=lambda f: {"role": "marketing"}
    ),
    "activate_contract": Case(ADMIN, ids=lambda f: {"version": f.version}),
    "diff_contracts": Case(EVERYONE, ids=lambda f: {"version": f.draft}, query={"against": "1"}),
    "suggest_contract": Case(MARKETING, body=lambda f: {"target": "won"}),
    "list_models": Case(REPORTS),
    "train_model": Case(MARKETING, body=lambda f: {"kind": "naive_bayes"}),  # 422: no history
    "get_model": Case(REPORTS, ids=model_draft),
    "approve_model": Case(SIGNERS, ids=model_draft, body=lambda f: {"role": "marketing"}),
    "activate_model": Case(ADMIN, ids=model_draft),  # 409 for the admin: not signed
    "backtest_contract": Case(REPORTS, body=lambda f: {"draft": EXAMPLE.read_text()}),
    "plan_capacity": Case(
        REPORTS, body=lambda f: {"rates": ["Mon-Fri 09-17=2"], "reps": 2, "runs": 1}
    ),
    "list_teams": Case(EVERYONE),
    "create_team": Case(ADMIN, body=lambda f: {"name": f"team{f.lead()}"}),
    "create_rep": Case(
        ADMIN, body=lambda f: {"email": f"rep{f.lead()}@lumen.example", "name": "New Rep"}
    ),
    "list_reps": Case(EVERYONE),
    "get_rep": Case(EVERYONE, ids=lambda f: {"rep_id": f.ana_id}),
    "update_rep": Case(
        SALES, ids=lambda f: {"rep_id": f.ana_id}, body=lambda f: {"status": "available"}
    ),
    "add_absence": Case(
        SALES,
        ids=lambda f: {"rep_id": f.ana_id},
        body=lambda f: {
            "starts_at": (f.ctx.clock.now() + timedelta(days=200)).isoformat(),
            "ends_at": (f.ctx.clock.now() + timedelta(days=201)).isoformat(),
        },
    ),
    "remove_absence": Case(SALES, ids=lambda f: {"rep_id": f.ana_id, "absence_id": f.absence()}),
    "list_accounts": Case(EVERYONE),
    "upsert_account": Case(
        MANAGERS, body=lambda f: {"domain": "northwind.example.com", "owner_email": ANA}
    ),
    "list_handoffs": Case(EVERYONE),
    "handoff_queue": Case(MANAGERS),
    "handoff_inbox": Case(frozenset({"rep"})),
    "team_today": Case(MANAGERS),
    "get_handoff": Case(EVERYONE, ids=handoff),
    "handoff_events": Case(EVERYONE, ids=handoff),
    "handoff_packet": Case(EVERYONE, ids=handoff),
    "accept_handoff": Case(SALES, ids=lambda f: {"handoff_id": f.ana_handoff()[1]}),
    "reject_handoff": Case(
        SALES,
        ids=lambda f: {"handoff_id": f.ana_handoff()[1]},
        body=lambda f: {"code": "no_budget"},
    ),
    "log_touch": Case(
        SALES, ids=lambda f: {"handoff_id": f.ana_handoff()[1]}, body=lambda f: {"kind": "call"}
    ),
    "qualify_handoff": Case(
        SALES, ids=lambda f: {"handoff_id": f.accepted()}, body=lambda f: {"fields": QUALIFY}
    ),
    "open_opportunity": Case(
        SALES, ids=lambda f: {"handoff_id": f.qualified()}, body=lambda f: {"amount": 1000}
    ),
    "won_handoff": Case(SALES, ids=lambda f: {"handoff_id": f.qualified()}, body=lambda f: {}),
    "lost_handoff": Case(
        SALES, ids=lambda f: {"handoff_id": f.accepted()}, body=lambda f: {"reason": "went dark"}
    ),
    "assign_handoff": Case(
        MANAGERS, ids=lambda f: {"handoff_id": f.queued()}, body=lambda f: {"to": ANA}
    ),
    "reassign_handoff": Case(
        MANAGERS, ids=lambda f: {"handoff_id": f.ana_handoff()[1]}, body=lambda f: {"to": BEN}
    ),
    "list_rep_channels": Case(SALES, ids=lambda f: {"rep_id": f.ana_id}),
    "add_rep_channel": Case(
        SALES, ids=lambda f: {"rep_id": f.ana_id}, body=lambda f: {"kind": "slack", "url": CHAT_URL}
    ),
    "list_team_channels": Case(MANAGERS, ids=team_na),
    "add_team_channel": Case(
        MANAGERS, ids=team_na, body=lambda f: {"kind": "teams", "url": CHAT_URL}
    ),
    "update_chat_channel": Case(SALES, ids=ana_channel, body=lambda f: {"active": False}),
    "remove_chat_channel": Case(SALES, ids=ana_channel),
    "get_notifications": Case(SALES, ids=lambda f: {"rep_id": f.ana_id}),
    "set_notifications": Case(
        SALES, ids=lambda f: {"rep_id": f.ana_id}, body=lambda f: {"email": True}
    ),
    "list_webhooks": Case(ADMIN),
    "create_webhook": Case(ADMIN, body=lambda f: {"url": "https://hooks.example.com/x"}),
    "delete_webhook": Case(ADMIN, ids=lambda f: {"endpoint_id": f.webhook()}),
    "list_webhook_deliveries": Case(ADMIN, ids=lambda f: {"endpoint_id": f.webhook()}),
    "create_intake_endpoint": Case(
        MARKETING,
        body=lambda f: {
            "name": f"new-form-{intake_endpoint(f)['name']}",
            "kind": "generic",
            "source": "web",
            "mapping": {"email": "email"},
        },
    ),
    "list_intake_endpoints": Case(MARKETING),
    "get_intake_endpoint": Case(MARKETING, ids=intake_endpoint),
    "update_intake_endpoint": Case(
        MARKETING, ids=intake_endpoint, body=lambda f: {"rate_per_minute": 30}
    ),
    "deactivate_intake_endpoint": Case(MARKETING, ids=intake_endpoint),
    "list_intake_requests": Case(MARKETING),
    "get_intake_request": Case(MARKETING, ids=intake_request),
    "retry_intake": Case(MARKETING, body=lambda f: {"all_failed": True}),
    "list_outbox": Case(ADMIN),
    "get_outbox_message": Case(ADMIN, ids=lambda f: {"message_id": f.failed_message()}),
    "retry_outbox_message": Case(ADMIN, ids=lambda f: {"message_id": f.failed_message()}),
    "retry_failed_outbox": Case(ADMIN),
    "export_person": Case(ADMIN, query={"email": "ana.lead@example.com"}),
    "erase_person": Case(ADMIN, body=lambda f: {"email": "someone.gone@example.com"}),
    "report_funnel": Case(REPORTS, query=PERIOD),
    "report_velocity": Case(REPORTS, query=PERIOD),
    "report_speed_to_lead": Case(REPORTS, query=PERIOD),
    "report_sla": Case(REPORTS, query=PERIOD),
    "report_sla_weekly": Case(REPORTS, query=PERIOD),
    "report_speed_distribution": Case(REPORTS, query=PERIOD),
    "report_rejections": Case(REPORTS, query=PERIOD),
    "report_credit": Case(REPORTS, query=PERIOD),
    "report_cost": Case(REPORTS, query=PERIOD),
    "report_nurture": Case(REPORTS, query=PERIOD),
    "preview_nurture_email": Case(
        MARKETING, body=lambda f: {"lead_id": f.lead_id, "template": "check-in"}
    ),
    "preview_nurture_enrollment": Case(
        MARKETING, body=lambda f: {"sequence": "not-ready", "tag": "cold"}
    ),
    "enroll_in_nurture": Case(MARKETING, body=lambda f: {"sequence": "not-ready", "tag": "cold"}),
    "list_nurture_enrollments": Case(MARKETING, query={"status": "active"}),
    "get_nurture_enrollment": Case(MARKETING, ids=nurture_enrollment),
    "end_nurture_enrollment": Case(MARKETING, ids=nurture_enrollment),
    "list_spend": Case(REPORTS),
    # A rep's export holds their own handoffs and leads (tests/integration/test_exports.py).
    "export_leads": Case(EVERYONE, query={"stage": "lead"}),
    "export_handoffs": Case(EVERYONE, query={"status": "assigned"}),
    "export_activities": Case(EVERYONE, query={"type": "captured"}),
    "export_verdicts": Case(EVERYONE, query={"verdict": "accepted"}),
    "import_spend": Case(
        MARKETING, content=b"source,campaign,start,end,amount\nwebinar,,2026-01-01,2026-01-31,900\n"
    ),
}


@pytest.fixture
def floor(sqlite_ctx: Context) -> Floor:
    return Floor(sqlite_ctx)


@pytest.fixture
def callers(sqlite_ctx: Context, floor: Floor) -> dict[str, dict[str, str]]:
    ctx = sqlite_ctx
    headers = {
        "admin": bearer(token_for(ctx, "admin")),
        "marketing": bearer(token_for(ctx, "marketing")),
        "sales_manager": bearer(token_for(ctx, "sales_manager", email=SAM, teams=("na",))),
        "rep": bearer(token_for(ctx, "rep", rep_email=ANA)),
        "anonymous": {},
    }
    revoked = token_for(ctx, "admin")
    principal = user_service.token_principal(ctx, revoked)
    assert principal is not None and principal.key_id is not None
    user_service.revoke_token(ctx, principal.key_id, actor=OP)
    headers["revoked token"] = bearer(revoked)
    expiring, secret = user_service.create_token(
        ctx,
        TokenCreate(
            name="short",
            scopes=["admin"],
            expires_at=ctx.clock.now() + timedelta(minutes=1),
            user_email=principal.email,
        ),
        actor=OP,
    )
    assert expiring.expires_at is not None
    headers["expired token"] = bearer(secret)
    _, key = user_service.add_intake_key(
        ctx, IntakeKeyCreate(name="matrix", source="web", rate_per_minute=10_000), actor=OP
    )
    headers["intake key"] = {"X-Baton-Intake-Key": key}
    headers["marketing (session)"] = session(ctx)
    return headers


def session(ctx: Context) -> dict[str, str]:
    """Sign the session user in: the cookie and the CSRF token as a browser sends them."""
    from baton.api.deps import session_signer

    started = user_service.login(ctx, "session@example.com", KNOWN_PASSWORD, address="matrix")
    cookie = session_signer(ctx).sign(started.key).decode()
    return {"Cookie": f"baton_session={cookie}", "X-CSRF-Token": started.csrf_token}


@pytest.fixture
def client(sqlite_ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_ctx), raise_server_exceptions=False) as test_client:
        yield test_client


def operations(client: TestClient) -> list[tuple[str, str, str]]:
    schema = client.get("/openapi.json").json()
    return [
        (method.upper(), path, spec["operationId"])
        for path, methods in schema["paths"].items()
        for method, spec in methods.items()
    ]


def fill(path: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def test_every_route_has_a_rule(client: TestClient) -> None:
    found = {operation for _, _, operation in operations(client)}
    assert found - TABLE.keys() == set(), "routes without a line in the access table"
    assert TABLE.keys() - found == set(), "lines for routes that no longer exist"


def test_every_route_allows_and_denies_as_the_table_says(
    sqlite_ctx: Context,
    client: TestClient,
    floor: Floor,
    callers: dict[str, dict[str, str]],
) -> None:
    clock = sqlite_ctx.clock
    assert isinstance(clock, ManualClock)
    clock.advance(timedelta(minutes=2))  # the short token has expired
    wrong: list[str] = []
    checked = 0
    for method, path, operation in operations(client):
        case = TABLE[operation]
        for caller in CALLERS:
            url = fill(path, case.ids(floor))
            client.cookies.clear()
            response = client.request(
                method,
                url,
                params=case.query,
                headers=callers[caller],
                json=None if case.body is None else case.body(floor),
                content=case.content,
            )
            if operation == "logout" and caller == "marketing (session)":
                callers[caller] = session(sqlite_ctx)
            denied = response.status_code in (401, 403, 404)
            expected = caller not in case.allowed and LIKE.get(caller) not in case.allowed
            checked += 1
            if response.status_code >= 500 or denied != expected:
                wrong.append(
                    f"{operation} ({method} {url}) as {caller}: {response.status_code} "
                    f"{response.text[:160]}"
                )
            if caller in ("anonymous", "revoked token", "expired token") and denied:
                assert response.status_code == 401, f"{operation} as {caller}"
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert checked == len(TABLE) * len(CALLERS)
    assert not wrong, f"{len(wrong)} of {checked} answers disagree:\n" + "\n".join(wrong)
