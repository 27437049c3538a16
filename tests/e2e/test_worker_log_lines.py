"""At the default log level the worker's log has no line per webhook sent (a newcomer's
trial: the HTTP client's "HTTP Request: POST ..." came once per delivery); at debug it
does. A busy pass is summed up in one line (``sent 2, failed 1``)."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Iterator

import pytest

from baton.cli.server import _log_lines
from baton.config import Settings
from baton.notify.webhooks import post_webhook
from baton.services.worker import TickReport
from baton.services.worker_log import pass_summary


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        for name in ("httpx", "httpcore"):  # what _log_lines set, for the next tests
            logging.getLogger(name).setLevel(logging.NOTSET)


def send_two(url: str) -> None:
    for n in range(2):
        sent = post_webhook(
            url,
            "s" * 32,
            event="handoff.assigned",
            body=b"{}",
            delivery_id=str(n),
            timestamp=int(time.time()),
        )
        assert sent.ok


@pytest.mark.parametrize(("level", "lines"), [("info", 0), ("debug", 2)])
def test_a_webhook_sent_is_a_log_line_only_at_debug(
    receiver: str, caplog: pytest.LogCaptureFixture, level: str, lines: int
) -> None:
    _log_lines(Settings(database_url="sqlite://", log_level=level))  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG if level == "debug" else logging.INFO)
    send_two(receiver)
    requests = [r for r in caplog.records if r.getMessage().startswith("HTTP Request: POST")]
    assert len(requests) == lines


def test_a_busy_pass_is_one_line() -> None:
    assert pass_summary(TickReport(sent=2, failed=1)) == "sent 2, failed 1"
    assert pass_summary(TickReport(assigned=1, checked=40)) == "assigned 1, duplicates checked 40"
