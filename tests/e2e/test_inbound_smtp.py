"""`baton inbound-smtp` as an operator runs it: a real process on a free port, a real
message sent with smtplib, SIGTERM, and the message is a lead's hand-raise."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from tests.email_messages import SALES, new_email

from baton.store.tables import activities, intake_endpoints, intake_requests, leads


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_DATABASE_URL": f"sqlite:///{tmp_path / 'baton.db'}",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from baton.cli import main; main()", "inbound-smtp", *args],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(r"inbound SMTP on \S+:(\d+)", line)
        if found:
            return process, int(found.group(1)), "".join(seen)
    process.kill()
    pytest.fail("the listener did not start:\n" + "".join(seen))


def test_the_listener_stores_a_message_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    process, port, started = _start(
        tmp_path, "--port", "0", "--address", SALES, "--endpoint", "inbox", "--max-size", "100000"
    )
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.send_message(new_email(), from_addr="dana@northwind.com", to_addrs=[SALES])
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                client.sendmail("x@spam.example", ["other@example.com"], b"Subject: x\r\n\r\nx")
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=30)
    output = started + rest
    assert process.returncode == 0, output
    assert "created the email endpoint inbox" in output
    assert "250 from dana@northwind.com" in output
    assert "inbound SMTP stopped: 1 stored, 0 deferred, 1 recipient(s) refused" in output
    engine = create_engine(f"sqlite:///{tmp_path / 'baton.db'}")
    try:
        with engine.connect() as connection:
            kind, source, limit = connection.execute(
                select(
                    intake_endpoints.c.kind,
                    intake_endpoints.c.source,
                    intake_endpoints.c.max_body_bytes,
                ).where(intake_endpoints.c.name == "inbox")
            ).one()
            assert (kind, source, limit) == ("email", "email", 100_000)
            assert connection.execute(select(intake_requests.c.status)).scalars().all() == [
                "processed"
            ]
            lead_id = connection.execute(
                select(leads.c.id).where(leads.c.email_key == "dana@northwind.com")
            ).scalar_one()
            types = connection.execute(
                select(activities.c.type).where(activities.c.lead_id == lead_id)
            ).scalars()
            assert "contact_sales" in list(types)
    finally:
        engine.dispose()


def test_an_endpoint_of_another_kind_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATON_")},
        "BATON_DATABASE_URL": f"sqlite:///{tmp_path / 'baton.db'}",
    }
    run = [sys.executable, "-c", "from baton.cli import main; main()"]
    made = subprocess.run(
        [
            *run,
            "intake",
            "add",
            "forms",
            "--kind",
            "generic",
            "--source",
            "web",
            "--map",
            "email=email",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    refused = subprocess.run(
        [*run, "inbound-smtp", "--address", SALES, "--endpoint", "forms", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "reads generic requests, not email" in refused.stderr
    bad = subprocess.run(
        [*run, "inbound-smtp", "--address", "not-an-address", "--port", "0"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1
    assert "--address: 'not-an-address' is not an email address" in bad.stderr


def test_stopping_lets_the_message_being_stored_get_its_answer() -> None:
    """Stop arrives while a message is being stored: the sender still hears 250."""
    import threading
    from collections.abc import Sequence

    from baton.inbound_smtp import ListenerConfig, listening
    from baton.services.inbound_email import SmtpReply

    storing, release = threading.Event(), threading.Event()

    def slow(content: bytes, mail_from: str, rcpt: Sequence[str], peer: str | None) -> SmtpReply:
        storing.set()
        release.wait(10)
        return SmtpReply(250, "2.0.0 Stored as intake request 1", 1)

    answers: list[object] = []
    config = ListenerConfig(host="127.0.0.1", port=0, addresses=(SALES,), max_bytes=100_000)

    def client(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            answers.append(smtp.send_message(new_email(), to_addrs=[SALES]))

    with listening(config, slow) as port:
        sender = threading.Thread(target=client, args=(port,))
        sender.start()
        assert storing.wait(10)
        threading.Timer(0.3, release.set).start()
    # The block's end asked the listener to stop while the message was being stored.
    sender.join(10)
    assert answers == [{}]  # no recipient refused: the message was accepted
