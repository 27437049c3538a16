"""What asking "is it healthy?" costs: ``deployment_status`` (``baton status``,
``GET /api/v1/status``) and one worker heartbeat, against an outbox that holds a long
history of sent messages and a backlog of due ones.

The status reads every queue by an aggregate over the index its lane claims by, so its
cost should follow the backlog, not the history; the figures say whether it does.

    python bench/status.py                        # SQLite, 200,000 sent + 5,000 due
    python bench/status.py --backend postgresql --sent 500000

CPU time of this process (``time.process_time``: on SQLite the queries run in it; on
PostgreSQL the server's share is not in it, so the wall time is printed too), median
and best of ``--runs``, with the load average beside each figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta

from sqlalchemy import insert

from _common import BENCH, context, database, machine
from baton.services.status import deployment_status, record_heartbeat, start_heartbeat
from baton.store.tables import outbox


def fill(ctx: object, *, sent: int, due: int) -> None:
    from baton.services.context import Context

    assert isinstance(ctx, Context)
    now = ctx.clock.now()

    def row(i: int, status: str) -> dict[str, object]:
        return {
            "channel": ("email", "webhook", "chat")[i % 3],
            "topic": "sla.remind",
            "recipient": f"rep{i % 50}@lumen.example",
            "payload": {},
            "status": status,
            "attempts": 1 if status == "sent" else i % 2,
            "attempts_base": 0,
            "next_attempt_at": now - timedelta(seconds=i % 3600),
            "created_at": now - timedelta(seconds=i % 86400),
            "sent_at": now if status == "sent" else None,
        }

    for start in range(0, sent + due, 5000):
        rows = [
            row(i, "sent" if i < sent else "pending")
            for i in range(start, min(start + 5000, sent + due))
        ]
        with ctx.write() as connection:
            connection.execute(insert(outbox), rows)


def timed(work: object, runs: int) -> tuple[list[float], list[float]]:
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        work()  # type: ignore[operator]
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    return cpu, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sent", type=int, default=200_000)
    parser.add_argument("--due", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print(f"{machine()}; {args.backend}; outbox: {args.sent:,} sent, {args.due:,} due")
    with database(args.backend) as url:
        ctx = context(url)
        fill(ctx, sent=args.sent, due=args.due)
        beat = start_heartbeat(ctx, host="bench", pid=os.getpid())
        for name, work in (
            ("deployment_status", lambda: deployment_status(ctx, actor=BENCH)),
            (
                "heartbeat write",
                lambda: record_heartbeat(ctx, beat, [], host="bench", pid=os.getpid()),
            ),
        ):
            work()  # warm: statement caches, the contract read
            cpu, wall = timed(work, args.runs)
            load = "/".join(f"{x:.2f}" for x in os.getloadavg())
            print(
                f"{name:18} CPU median {statistics.median(cpu):7.2f} ms, best {min(cpu):7.2f} ms;"
                f" wall median {statistics.median(wall):7.2f} ms (load {load})"
            )
        found = deployment_status(ctx, actor=BENCH)
        print("verdict:", found.verdict, [(q.key, q.waiting) for q in found.queues if q.waiting])
        ctx.engine.dispose()


if __name__ == "__main__":
    main()
