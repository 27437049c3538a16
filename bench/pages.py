"""Server time of each web page on the demo data: p50 and p99 over 50 requests.

A small demo company (``baton demo``'s generator, ``--leads`` leads, default 1,000) in
a temporary SQLite file; each demo user signs in once (replacing their one-time
password, as a person would); then each page of :data:`PAGES` is requested 50 times
through the ASGI app in-process (FastAPI's TestClient: no network, so the time is the
server's). Target: p99 < 200 ms.

Pages added later: one line in :data:`PAGES` (role, path); ``{handoff}`` is one of the
rep's open handoffs, ``{lead}`` its lead, ``{version}`` the active contract version.

    .venv/bin/python bench/pages.py [--leads 1000] [--requests 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import context, database, machine
from baton.api.app import create_app
from baton.api.deps import SESSION_COOKIE, session_signer
from baton.domain.users import PasswordChange
from baton.services import users as user_service
from baton.services.context import Context
from baton.services.demo import demo_users, generate_demo
from baton.services.inbox import rep_inbox

PAGES: list[tuple[str, str]] = [
    ("rep", "/inbox"),
    ("rep", "/inbox/list"),
    ("rep", "/handoffs/{handoff}"),
    ("rep", "/home"),
    ("sales_manager", "/team"),
    ("marketing", "/dashboard"),
    ("marketing", "/dashboard?group=campaign&team=na"),
    ("marketing", "/dashboard/sla-weekly.csv"),
    ("marketing", "/contract"),
    ("rep", "/contract/{version}"),
    ("marketing", "/contract/diff"),
    ("marketing", "/contract/new"),
    ("admin", "/admin"),
    ("admin", "/team"),
    ("admin", "/admin/users"),
    ("admin", "/admin/tokens"),
    ("admin", "/admin/reps"),
    ("admin", "/admin/reps/1"),
    ("admin", "/admin/webhooks"),
    ("admin", "/admin/intake-keys"),
    ("admin", "/admin/duplicates"),
    ("marketing", "/leads"),
    ("marketing", "/leads/{lead}"),
]
"""(role, path) of every page to time; a path the app does not serve is reported as such."""

NEW_PASSWORD = "bench pages passphrase"


def sign_in_all(ctx: Context) -> dict[str, str]:
    """Each demo user's session cookie, after choosing their own password."""
    cookies: dict[str, str] = {}
    for email, role, secret in demo_users(ctx):
        started = user_service.login(ctx, email, secret, address="bench")
        session = user_service.session_principal(ctx, started.key)
        assert session is not None
        user_service.change_password(
            ctx,
            PasswordChange(current_password=secret, new_password=NEW_PASSWORD),
            actor=session.principal,
            keep_session=started.key,
        )
        cookies[role] = session_signer(ctx).sign(started.key).decode()
    return cookies


def ids(ctx: Context, cookies: dict[str, str]) -> dict[str, int]:
    """Placeholders: one of the rep's open handoffs (the inbox's first) and its lead."""
    from baton.services.contracts import list_contracts

    signer = session_signer(ctx)
    rep = user_service.session_principal(ctx, signer.unsign(cookies["rep"]).decode())
    assert rep is not None
    box = rep_inbox(ctx, actor=rep.principal)
    if not box.items:
        raise SystemExit("the demo rep has no open handoff; try more --leads")
    active = [c.version for c in list_contracts(ctx, actor=rep.principal) if c.status == "active"]
    return {
        "handoff": box.items[0].handoff.id,
        "lead": box.items[0].handoff.lead_id,
        "version": active[0] if active else 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=50)
    args, _ = parser.parse_known_args()
    from fastapi.testclient import TestClient

    with database("sqlite") as url:
        ctx = context(url)
        started = time.perf_counter()
        generate_demo(ctx, leads_count=args.leads, days=60)
        print(f"demo data: {args.leads:,} leads in {time.perf_counter() - started:.1f} s")
        cookies = sign_in_all(ctx)
        values = ids(ctx, cookies)
        app = create_app(ctx)
        print(f"{'page':<34} {'role':<14} {'status':>6} {'p50 ms':>8} {'p99 ms':>8}")
        worst = 0.0
        with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
            for role, pattern in PAGES:
                path = pattern.format(**values)
                client.cookies.clear()
                client.cookies.set(SESSION_COOKIE, cookies[role])
                first = client.get(path)
                if first.status_code == 404 and "{" not in pattern and path != "/":
                    print(f"{path:<34} {role:<14} {'—':>6} {'not served':>17}")
                    continue
                times = []
                for _ in range(args.requests):
                    began = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - began) * 1000)
                times.sort()
                p50 = statistics.median(times)
                p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
                worst = max(worst, p99)
                print(f"{path:<34} {role:<14} {answer.status_code:>6} {p50:>8.1f} {p99:>8.1f}")
        ctx.engine.dispose()
    print(f"worst p99 {worst:.1f} ms (target < 200 ms) on {machine()}")


if __name__ == "__main__":
    main()
