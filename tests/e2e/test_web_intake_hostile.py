"""The intake request page shows whatever a hostile sender stored, never a 5xx: a
JSON body nested 100,000 levels deep (inside the body limit), and the endpoint's own
secret sent in the body, masked."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.e2e import test_web_access as access
from tests.web_world import World

from baton.domain.access import operator
from baton.domain.intake import Delivery
from baton.services import intake as intake_service
from baton.services.context import Context

world_template = access.world_template
sqlite_ctx = access.sqlite_ctx
world = access.world
app_client = access.app_client
sign_in = access.sign_in

OP = operator("test")


def test_a_deep_or_keyed_body_shows_on_its_page(
    app_client: TestClient, world: World, sqlite_ctx: Context
) -> None:
    intake_service.add_endpoint(
        sqlite_ctx,
        {
            "name": "gads-hostile",
            "kind": "google_ads_lead_form",
            "source": "google",
            "secret": "the-google-key-123",
        },
        actor=OP,
    )
    bodies = [b"[" * 100_000 + b"]" * 100_000, b'{"google_key": "the-google-key-123"}']
    ids = []
    for body in bodies:
        delivery = Delivery(
            body=body,
            content_type="application/json",
            headers={},
            query={},
            received_at=sqlite_ctx.clock.now(),
        )
        outcome = intake_service.receive(sqlite_ctx, "gads-hostile", delivery)
        assert outcome.request_id is not None
        ids.append(outcome.request_id)
    sign_in(app_client, world.users["marketing"])
    for request_id in ids:
        page = app_client.get(f"/admin/intake/requests/{request_id}")
        assert page.status_code == 200, page.text[:300]
        assert "the-google-key-123" not in page.text
