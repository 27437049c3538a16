"""Signed webhooks: one HTTP POST per attempt, and when to try again.

What a receiver gets
    ``POST`` to the configured URL with a JSON body and these headers:

    ============================  =====================================================
    ``Content-Type``              ``application/json``
    ``X-Baton-Event``             the event name, e.g. ``lead.handed_off``
    ``X-Baton-Delivery``          an id that is the same on every retry of one delivery
                                  (use it to ignore a delivery already processed)
    ``X-Baton-Timestamp``         Unix time in seconds when this attempt was signed
    ``X-Baton-Signature``         ``sha256=`` + hex HMAC-SHA256, keyed with the shared
                                  secret, of ``"{timestamp}."`` (UTF-8) followed by the
                                  raw body bytes
    ============================  =====================================================

    Any 2xx answer means delivered. 408, 429 and 5xx answers, timeouts and network
    errors are retried with exponential backoff (:func:`next_attempt_delay`), up to
    :data:`MAX_ATTEMPTS` attempts; any other answer (including a redirect, which is not
    followed) fails the delivery at once. Each retry is signed again with a new
    timestamp, so the signature of a retry differs from the first attempt's.

How a receiver checks a request (this is :func:`verify`)
    1. Read the **raw** body bytes, before any JSON parsing (re-serialised JSON differs).
    2. Read ``X-Baton-Timestamp`` as an integer; refuse the request when it is more than
       5 minutes away from the receiver's clock (replay protection: a captured request
       cannot be sent again later).
    3. Compute ``"sha256=" + hex(HMAC-SHA256(secret, f"{timestamp}.".encode() + body))``
       and compare it with ``X-Baton-Signature`` in **constant time** (Python:
       ``hmac.compare_digest``; Node: ``crypto.timingSafeEqual``), never with ``==``.
    4. Optionally remember ``X-Baton-Delivery`` ids for a while to drop duplicates: a
       delivery whose answer was lost is sent again.

    In Python::

        from baton.notify.webhooks import verify
        ok = verify(secret, int(request.headers["X-Baton-Timestamp"]), raw_body,
                    request.headers["X-Baton-Signature"], now=int(time.time()))
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx

import baton
from baton.notify.egress import EgressRefused

SIGNATURE_HEADER = "X-Baton-Signature"
TIMESTAMP_HEADER = "X-Baton-Timestamp"
EVENT_HEADER = "X-Baton-Event"
DELIVERY_HEADER = "X-Baton-Delivery"

MAX_ATTEMPTS = 8
"""Attempts per delivery, the first included; with the default backoff the last one is
made about 2 hours 7 minutes after the first."""

USER_AGENT = f"Baton-Webhooks/{baton.__version__}"
RETRYABLE_STATUSES = frozenset({408, 429})
"""Besides every 5xx: request timeout and too many requests."""

MAX_ERROR = 300
"""Longest error text kept for an attempt."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Baton-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of
    ``f"{timestamp}."`` followed by ``body``, keyed with ``secret`` (UTF-8)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp: int,
    body: bytes,
    signature: str,
    *,
    now: int,
    tolerance_seconds: int = 300,
) -> bool:
    """Whether a received webhook is authentic and fresh (what receivers implement).

    ``timestamp`` and ``signature`` are the ``X-Baton-Timestamp`` and
    ``X-Baton-Signature`` headers, ``body`` the raw body bytes and ``now`` the
    receiver's Unix time. False when the timestamp is more than ``tolerance_seconds``
    away from ``now`` in either direction (a replayed old request, or a clock far off)
    or when the signature does not match; the comparison takes constant time so that
    its duration tells an attacker nothing about how much of a guess was right.
    """
    if abs(now - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8"))


@dataclass(frozen=True)
class AttemptResult:
    """What one delivery attempt did.

    ``ok`` for a 2xx answer. Otherwise ``error`` is one short readable sentence (the
    status line, or the network problem, or why the address was refused) and
    ``retryable`` says whether another attempt can help. The answer's body is never
    read, let alone kept: a receiver's reply is not Baton's to store or show (and an
    internal service's reply is exactly what a forged webhook URL would try to read).
    ``status_code`` is None when no answer came.
    ``retry_after_seconds`` is the receiver's ``Retry-After`` (on 429 or 503), which
    the outbox should wait at least, when it gave one.
    """

    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    retryable: bool
    retry_after_seconds: float | None = None


def post_webhook(
    url: str,
    secret: str,
    *,
    event: str,
    body: bytes,
    delivery_id: str,
    timestamp: int,
    timeout: float = 10.0,
    client: httpx.Client | None = None,
) -> AttemptResult:
    """POST one signed webhook and report the outcome; never raises for a failed delivery.

    ``timestamp`` (Unix seconds, normally now) is signed and sent; ``delivery_id``
    should stay the same across the retries of one delivery. ``timeout`` applies to
    connecting and to each read and write. Redirects are not followed (a redirect is a
    non-retryable failure: the URL should be updated). Pass ``client`` to reuse
    connections, and to decide where requests may go (the worker passes a
    :func:`~baton.notify.egress.guarded_client`); without one a client is made for this
    attempt, with no address policy.
    """
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
    }
    for name in (EVENT_HEADER, DELIVERY_HEADER):
        if not headers[name] or any(character in headers[name] for character in "\r\n\0"):
            raise ValueError(f"{name} must be a non-empty single line")
    started = time.perf_counter()
    problem = _url_problem(url)
    if problem is not None:
        return _failed(started, f"unusable webhook URL {url!r}: {problem}", retryable=False)
    if client is None:
        with httpx.Client(timeout=timeout, follow_redirects=False) as own:
            return _post(own, url, headers, body, timeout, timestamp, started)
    return _post(client, url, headers, body, timeout, timestamp, started)


def next_attempt_delay(
    attempt: int, *, base_seconds: float = 30, cap_seconds: float = 6 * 3600
) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based) before the next.

    Doubles from ``base_seconds`` (attempt 1 -> base, 2 -> 2 x base, 3 -> 4 x base...)
    up to ``cap_seconds``. No jitter: the same attempt always waits the same time.
    With the defaults: 30 s, 1 min, 2 min, 4 min, 8 min, 16 min, 32 min, 64 min.
    """
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if base_seconds < 0 or cap_seconds < 0:
        raise ValueError("delays cannot be negative")
    exponent = min(attempt - 1, 64)  # 2**64 x any base is past any sensible cap
    return timedelta(seconds=min(base_seconds * 2.0**exponent, cap_seconds))


def _post(
    client: httpx.Client,
    url: str,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    timestamp: int,
    started: float,
) -> AttemptResult:
    try:
        request = client.build_request("POST", url, content=body, headers=headers, timeout=timeout)
        # Streamed, and closed unread: only the status line matters.
        response = client.send(request, follow_redirects=False, stream=True)
        try:
            status = response.status_code
            if 200 <= status < 300:
                return AttemptResult(True, status, None, _elapsed(started), retryable=False)
            retryable = status in RETRYABLE_STATUSES or status >= 500
            error = f"HTTP {status} {_one_line(response.reason_phrase)}".rstrip()
            if 300 <= status < 400:
                error += ": redirects are not followed; update the webhook URL"
            return AttemptResult(
                ok=False,
                status_code=status,
                error=error,
                duration_ms=_elapsed(started),
                retryable=retryable,
                retry_after_seconds=_retry_after(response, timestamp) if retryable else None,
            )
        finally:
            response.close()
    except EgressRefused as error:
        return _failed(started, f"refused: {error}", retryable=False)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        return _failed(started, f"unusable webhook URL {url!r}: {error}", retryable=False)
    except httpx.TimeoutException as error:
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(error), "the request")
        return _failed(started, f"timed out after {timeout:g} s {phase}", retryable=True)
    except httpx.ConnectError as error:
        return _failed(started, f"could not connect: {_reason(error)}", retryable=True)
    except httpx.TransportError as error:
        return _failed(started, f"network error: {_reason(error)}", retryable=True)


def _url_problem(url: str) -> str | None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        return str(error)
    if parsed.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parsed.host:
        return "it has no host"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return "its port is out of range"
    return None


def _failed(started: float, error: str, retryable: bool) -> AttemptResult:
    return AttemptResult(
        ok=False,
        status_code=None,
        error=_one_line(error),
        duration_ms=_elapsed(started),
        retryable=retryable,
    )


def _elapsed(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _reason(error: Exception) -> str:
    """The exception's text without ``[Errno 111]``-style prefixes."""
    text = re.sub(r"\[Errno -?\d+\]\s*", "", str(error)).strip()
    return text or "no details"


def _one_line(text: str) -> str:
    """``text`` on one line, at most :data:`MAX_ERROR` characters."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def _retry_after(response: httpx.Response, now: int) -> float | None:
    """``Retry-After`` in seconds (it is either seconds or an HTTP date), if usable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
