"""Posting one message to a Slack or Microsoft Teams incoming webhook.

The same HTTP rules as Baton's own webhooks (:mod:`baton.notify.webhooks`): any 2xx is
delivered; 408, 429, 5xx, timeouts and network errors are retried (429 and 503 honour
``Retry-After``); any other answer fails at once (Slack's ``404 no_service`` or
``410 channel_is_archived``, a Teams URL that was deleted: sending again cannot help).
No redirect is followed and the reply's body is never read.

The URL is a secret: it never appears in the result's error text, whatever the
network layer put in its exception.
"""

from __future__ import annotations

import time

import httpx

import baton
from baton.notify.webhooks import AttemptResult, _failed, _post, _url_problem
from baton.redact import mask

USER_AGENT = f"Baton-Chat/{baton.__version__}"


def post_chat(
    url: str,
    body: bytes,
    *,
    delivery_id: str,
    now: int,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> AttemptResult:
    """POST ``body`` (JSON) to a chat webhook and report the outcome; never raises for
    a failed delivery. ``client`` decides where requests may go (the worker passes its
    egress-guarded client)."""
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Baton-Delivery": delivery_id,
    }
    started = time.perf_counter()
    if _url_problem(url) is not None:
        return _failed(started, "unusable chat webhook URL", retryable=False)
    if client is None:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as own:
            result = _post(own, url, headers, body, timeout, now, started)
    else:
        result = _post(client, url, headers, body, timeout, now, started)
    if result.error is None:
        return result
    return AttemptResult(
        ok=result.ok,
        status_code=result.status_code,
        error=mask(result.error, [url]),
        duration_ms=result.duration_ms,
        retryable=result.retryable,
        retry_after_seconds=result.retry_after_seconds,
    )
