"""Server time of each web page on the demo data and at scale: p50 and p99 over 50 requests.

A small demo company (``baton demo``'s generator, ``--leads`` leads, default 1,000) in
a temporary SQLite file; each demo user signs in once (replacing their one-time
password, as a person would); then each page of :data:`PAGES` is requested 50 times
through the ASGI app in-process (FastAPI's TestClient: no network, so the time is the
server's). Target: p99 < 200 ms.

Above :data:`DEMO_MAX` leads (``--leads 1000000``) the demo company (``--demo-leads``,
its reps, teams, users, active contract and open handoffs) is topped up with generated
leads (``fill`` of ``_common``, as ``bench/search.py``) created over the last year,
with two activities each, a stage move for those past ``lead`` and a closed handoff
(won, lost, rejected or closed, to the demo's reps) for those past ``mql``; the
milestones and chains are then rebuilt as ``baton report rebuild`` would. Target:
p99 < 500 ms. ``--keep FILE`` builds that world once into FILE and reuses it.

Pages added later: one line in :data:`PAGES` (role, path); ``{handoff}`` is one of the
rep's open handoffs, ``{lead}`` its lead, ``{version}`` the active contract version.

    .venv/bin/python bench/pages.py [--leads 1000] [--requests 50]
    .venv/bin/python bench/pages.py --leads 1000000 --keep /tmp/pages-1m.db
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, text

from _common import context, database, fill, machine
from baton.api.app import create_app
from baton.api.deps import SESSION_COOKIE, session_signer
from baton.domain.users import PasswordChange
from baton.services import users as user_service
from baton.services.context import Context
from baton.services.demo import DEMO_USERS, demo_users, generate_demo
from baton.services.inbox import rep_inbox
from baton.services.milestones import rebuild_milestones
from baton.store.tables import leads

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
DEMO_MAX = 5_000
"""Above this many leads the demo company is topped up with generated leads."""
STAGE_HANDOFF = {
    "sal": "closed",
    "sql": "closed",
    "opportunity": "closed",
    "customer": "won",
    "lost": "lost",
    "disqualified": "rejected",
    "nurture": "rejected",
}
"""The closed handoff a generated lead past ``mql`` had, by its stage."""
STAGES_AT_SCALE = (
    ("lead",) * 84
    + ("mql", "sal", "sql", "customer")
    + ("opportunity", "nurture") * 2
    + ("lost",) * 3
    + ("disqualified",) * 5
)
"""Stages of the generated leads, as in the demo company: 84% never an MQL, 15% handed
off (and closed), 1% customers."""


def _at(offset: str) -> str:
    """SQLite: a generated lead's creation time moved by ``offset``, in the stored form."""
    return f"datetime(l.created_at, '{offset}') || '.000000'"


def top_up(ctx: Context, first_id: int, n: int, seed: int = 13) -> None:
    """Add ``n`` generated leads (ids from ``first_id``) with their history (see the
    module docstring), straight to SQLite, then rebuild the milestones."""
    now = ctx.clock.now()
    year = 365 * 86400

    def created(rng: random.Random) -> str:
        return (now - timedelta(seconds=rng.randrange(3600, year))).strftime(
            "%Y-%m-%d %H:%M:%S.000000"
        )

    seconds = fill(ctx, n, seed, first_id=first_id, created=created, stages=STAGES_AT_SCALE)
    print(f"  {n:,} generated leads in {seconds:.0f} s")
    began = time.perf_counter()
    generated = f"l.id >= {first_id}"
    with ctx.write() as connection:
        reps = [r for (r,) in connection.execute(text("SELECT id FROM reps ORDER BY id"))]
        code = connection.execute(
            text("SELECT rejection_code FROM handoffs WHERE rejection_code IS NOT NULL LIMIT 1")
        ).scalar()
        for kind, offset in (("page_view", "-2 hours"), ("form_submit", "+0 seconds")):
            connection.execute(
                text(
                    "INSERT INTO activities (lead_id, type, occurred_at, received_at, properties)"
                    f" SELECT l.id, '{kind}', {_at(offset)}, {_at(offset)}, '{{}}'"
                    f" FROM leads l WHERE {generated}"
                )
            )
        connection.execute(
            text(
                "UPDATE leads SET activity_count = 2, last_activity_at = created_at"
                f" WHERE id >= {first_id}"
            )
        )
        connection.execute(
            text(
                "INSERT INTO transitions (lead_id, from_stage, to_stage, actor, reason,"
                f" occurred_at, contract_version) SELECT l.id, 'lead', 'mql', 'scoring',"
                f" 'score', {_at('+1 hours')}, 1 FROM leads l"
                f" WHERE {generated} AND l.stage != 'lead'"
            )
        )
        connection.execute(
            text(
                "INSERT INTO transitions (lead_id, from_stage, to_stage, actor, reason,"
                f" occurred_at, contract_version) SELECT l.id, 'mql', l.stage, 'bench',"
                f" 'sales', {_at('+3 days')}, 1 FROM leads l"
                f" WHERE {generated} AND l.stage NOT IN ('lead', 'mql')"
            )
        )
        for stage, status in STAGE_HANDOFF.items():
            accepted = "NULL" if status == "rejected" else _at("+2 hours")
            reason = f"'{code}'" if status == "rejected" and code else "NULL"
            connection.execute(
                text(
                    "INSERT INTO handoffs (lead_id, rep_id, status, contract_version, mql_at,"
                    " created_at, assigned_at, notified_at, accepted_at, first_touch_at,"
                    " closed_at, outcome, rejection_code, marketing_credit, routing)"
                    f" SELECT l.id, CASE l.id % {len(reps)} "
                    + " ".join(f"WHEN {i} THEN {rep}" for i, rep in enumerate(reps))
                    + f" END, '{status}', 1, {_at('+1 hours')}, {_at('+1 hours')},"
                    f" {_at('+1 hours')}, {_at('+1 hours')}, {accepted}, {_at('+3 hours')},"
                    f" {_at('+3 days')}, '{status}', {reason}, 1, '{{}}'"
                    f" FROM leads l WHERE {generated} AND l.stage = '{stage}'"
                )
            )
        connection.execute(text("UPDATE handoffs SET chain_id = id WHERE chain_id IS NULL"))
    print(f"  activities, transitions, handoffs in {time.perf_counter() - began:.0f} s")
    began = time.perf_counter()
    rebuilt = rebuild_milestones(ctx)
    with ctx.write() as connection:
        connection.execute(text("ANALYZE"))
    print(f"  milestones rebuilt ({rebuilt}) in {time.perf_counter() - began:.0f} s")


def build(ctx: Context, total: int, demo_leads: int) -> None:
    """The demo company, topped up to ``total`` leads when that is above DEMO_MAX."""
    started = time.perf_counter()
    generate_demo(ctx, leads_count=min(total, demo_leads if total > DEMO_MAX else total), days=60)
    print(f"demo data in {time.perf_counter() - started:.1f} s")
    if total > DEMO_MAX:
        with ctx.read() as connection:
            have = connection.execute(select(func.count()).select_from(leads)).scalar_one()
            top = connection.execute(select(func.max(leads.c.id))).scalar_one()
        top_up(ctx, int(top) + 1, total - have)
    print(f"{total:,} leads in {time.perf_counter() - started:.0f} s")


def sign_in_all(ctx: Context) -> dict[str, str]:
    """Each demo user's session cookie, after choosing their own password (a world
    kept from an earlier run: with that password)."""
    cookies: dict[str, str] = {}
    made = demo_users(ctx)
    if not made:
        for email, _, role, _, _ in DEMO_USERS:
            started = user_service.login(ctx, email, NEW_PASSWORD, address="bench")
            cookies[str(role)] = session_signer(ctx).sign(started.key).decode()
        return cookies
    for email, role, secret in made:
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
    parser.add_argument("--demo-leads", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="SQLite file to build once and reuse")
    args, _ = parser.parse_known_args()
    from fastapi.testclient import TestClient

    with database("sqlite") as url:
        if args.keep is not None:
            url = f"sqlite:///{args.keep}"
        ctx = context(url)
        with ctx.read() as connection:
            have = connection.execute(select(func.count()).select_from(leads)).scalar_one()
        if have == 0:
            build(ctx, args.leads, args.demo_leads)
        elif have != args.leads:
            raise SystemExit(f"{url} holds {have:,} leads, not {args.leads:,}; give a fresh file")
        else:
            print(f"reusing {url}: {have:,} leads")
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
    target = 500 if args.leads > DEMO_MAX else 200
    print(f"worst p99 {worst:.1f} ms (target < {target} ms) at {args.leads:,} leads on {machine()}")


if __name__ == "__main__":
    main()
