"""Reading the full record of an id-only webhook: Meta lead ads and HubSpot contacts.

Meta's lead-ads webhook and HubSpot's contact webhooks carry ids, not answers. The
intake stores such an item as ``awaiting_fetch`` and the worker
(:mod:`baton.services.intake_fetch`) reads the record with the endpoint's
``fetch_token``, through this module:

=========  =======================================================  ===========================
platform   request                                                  default base URL
=========  =======================================================  ===========================
meta       ``GET {base}/{leadgen_id}?fields=<FIELDS>``              ``https://graph.facebook.com/v21.0``
hubspot    ``GET {base}/crm/v3/objects/contacts/{id}?properties=``  ``https://api.hubapi.com``
=========  =======================================================  ===========================

``base`` is the endpoint's ``fetch_base_url`` when set (a pinned Graph API version,
HubSpot's EU data centre, a test double), else the default above. The token goes in
an ``Authorization: Bearer`` header, never in the URL (a URL ends up in proxies' and
servers' logs). Meta wants a Page access token with the ``leads_retrieval``
permission; HubSpot a private app's access token with ``crm.objects.contacts.read``.

What an answer means (:class:`FetchResult`): a 2xx with a JSON object is the record;
401/403 (a bad or expired token, a missing permission), 404 (no such lead or
contact), 400 and any other 4xx fail the item at once with the platform's own message
(a retry cannot help until someone fixes the token); 408, 429 (with ``Retry-After``),
5xx, time-outs and network errors are retried with backoff. Redirects are not
followed. The client the worker passes only connects where the egress rule allows
(:mod:`baton.notify.egress`: public addresses plus ``BATON_WEBHOOK_INTERNAL_ALLOWLIST``),
so a ``fetch_base_url`` pointed inside the network is refused, nothing sent.

The token never appears in an error, a log line or a result: it is added to the
process's masked secrets (:func:`baton.redact.remember`) before it is used, and every
error text is masked again here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

import baton
from baton.domain.intake import FetchRequest
from baton.notify.egress import EgressRefused
from baton.redact import mask, remember

DEFAULT_BASE_URLS: dict[str, str] = {
    "meta": "https://graph.facebook.com/v21.0",
    "hubspot": "https://api.hubapi.com",
}
"""Where each platform's records are read when the endpoint names no ``fetch_base_url``."""

PLATFORM_NAMES = {"meta": "Meta", "hubspot": "HubSpot"}
MAX_RECORD_BYTES = 1_000_000
"""Largest answer read (a lead or a contact is a few kilobytes)."""
MAX_ERROR = 300
USER_AGENT = f"Baton-Intake/{baton.__version__}"
RETRYABLE_STATUSES = frozenset({408, 429})
_PLATFORM_ID = re.compile(r"[0-9]{1,30}")
_PROPERTY = re.compile(r"[a-z0-9_]{1,100}")


@dataclass(frozen=True)
class FetchResult:
    """One read's outcome. ``record`` is the platform's JSON object when ``ok``;
    otherwise ``error`` is one readable line (never the token) and ``retryable`` says
    whether trying again later can help."""

    ok: bool
    record: dict[str, Any] | None = None
    error: str | None = None
    retryable: bool = False
    status_code: int | None = None
    retry_after_seconds: float | None = None


def base_url(platform: str, configured: str | None) -> str:
    """The endpoint's ``fetch_base_url`` (without a trailing ``/``), else the
    platform's default."""
    chosen = (configured or "").strip() or DEFAULT_BASE_URLS[platform]
    return chosen.rstrip("/")


def record_url(
    request: FetchRequest,
    configured_base: str | None,
    mapping: Mapping[str, Any] | None = None,
) -> str:
    """The URL the record of ``request`` is read from (no token in it); a HubSpot read
    also asks for the properties the endpoint's ``mapping`` names. Raises
    ``ValueError`` for an id that is not a platform id (digits only), so an id from a
    forged webhook cannot walk to another path."""
    if not _PLATFORM_ID.fullmatch(request.object_id):
        raise ValueError(f"{request.object_id[:40]!r} is not a {request.platform} record id")
    base = base_url(request.platform, configured_base)
    if request.platform == "meta":
        from baton.integrations.meta_lead_ads import FIELDS

        return f"{base}/{request.object_id}?{urlencode({'fields': FIELDS})}"
    if request.platform == "hubspot":
        from baton.integrations.hubspot import PROPERTIES

        wanted = [*PROPERTIES]
        for value in (mapping or {}).values():
            if isinstance(value, str) and _PROPERTY.fullmatch(value) and value not in wanted:
                wanted.append(value)
        query = urlencode({"properties": ",".join(wanted), "archived": "false"})
        return f"{base}/crm/v3/objects/contacts/{request.object_id}?{query}"
    raise ValueError(f"no fetch for platform {request.platform!r}")


def fetch_record(
    client: httpx.Client,
    request: FetchRequest,
    *,
    token: str | None,
    configured_base: str | None = None,
    mapping: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> FetchResult:
    """Read one record; never raises for a failed read (see the module docstring)."""
    platform = PLATFORM_NAMES.get(request.platform, request.platform)
    if not token:
        return FetchResult(
            ok=False,
            error=f"the endpoint has no fetch token, so the {platform} record cannot be read; "
            "set one (baton intake update NAME --fetch-token ...) and retry",
        )
    remember(token)
    try:
        url = record_url(request, configured_base, mapping)
    except ValueError as error:
        return FetchResult(ok=False, error=_line(str(error), token))
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        with client.stream(
            "GET", url, headers=headers, timeout=timeout, follow_redirects=False
        ) as response:
            body = _read_capped(response)
            return _outcome(platform, response, body, token)
    except EgressRefused as error:
        return FetchResult(ok=False, error=_line(f"refused: {error}", token))
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as error:
        return FetchResult(ok=False, error=_line(f"unusable fetch URL: {error}", token))
    except httpx.TimeoutException:
        return FetchResult(
            ok=False, error=f"{platform} did not answer within {timeout:g} s", retryable=True
        )
    except httpx.ConnectError as error:
        return FetchResult(
            ok=False,
            error=_line(f"could not connect to {platform}: {_reason(error)}", token),
            retryable=True,
        )
    except httpx.TransportError as error:
        return FetchResult(
            ok=False, error=_line(f"network error: {_reason(error)}", token), retryable=True
        )
    except _TooLarge:
        return FetchResult(
            ok=False,
            error=f"the {platform} answer is larger than {MAX_RECORD_BYTES:,} bytes",
        )


class _TooLarge(Exception):
    pass


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_RECORD_BYTES:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _outcome(platform: str, response: httpx.Response, body: bytes, token: str) -> FetchResult:
    status = response.status_code
    if 200 <= status < 300:
        try:
            record = json.loads(body)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            return FetchResult(
                ok=False,
                status_code=status,
                error=f"{platform} answered HTTP {status} without a JSON object; "
                "check the endpoint's fetch base URL",
            )
        return FetchResult(ok=True, record=record, status_code=status)
    said = _platform_message(body)
    head = f"{platform} answered HTTP {status}"
    if 300 <= status < 400:
        text = f"{head}: redirects are not followed; check the endpoint's fetch base URL"
    elif status in (401, 403):
        text = f"{head}: the fetch token was refused (expired, revoked or missing a permission)"
    elif status == 404:
        text = f"{head}: no such record (deleted, or read with another account's token)"
    else:
        text = head
    if said:
        text += f" — {said}"
    retryable = status in RETRYABLE_STATUSES or status >= 500
    return FetchResult(
        ok=False,
        status_code=status,
        error=_line(text, token),
        retryable=retryable,
        retry_after_seconds=_retry_after(response) if retryable else None,
    )


def _platform_message(body: bytes) -> str:
    """The platform's own explanation: Meta ``{"error": {"message"}}``, HubSpot
    ``{"message", "category"}``."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(data.get("message"), str):
        category = data.get("category")
        return f"{data['message']} ({category})" if isinstance(category, str) else data["message"]
    return ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _reason(error: Exception) -> str:
    text = re.sub(r"\[Errno -?\d+\]\s*", "", str(error)).strip()
    return text or type(error).__name__


def _line(text: str, token: str) -> str:
    """One line, at most :data:`MAX_ERROR` characters, with the token (and any other
    known secret) masked."""
    text = mask(" ".join(text.split()), [token])
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
