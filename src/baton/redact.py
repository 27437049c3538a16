"""Keeping secrets out of everything Baton prints or logs.

A database URL carries its password (``postgresql+psycopg://baton:s3cret@db/baton``),
and so can any error that quotes it: a driver's, SQLAlchemy's (which, before 2.1, quoted
a URL it could not parse), a traceback. Masking at each call site misses the next one,
so masking happens where text leaves the process:

* :func:`mask` replaces the password of every ``scheme://user:password@`` in a text,
  and every secret the process knows of (the database password as written and as
  percent-encoded, the SMTP password, the secret key), with ``***``;
* the CLI passes every error line through it, and :func:`install_log_masking` makes
  every log record (its message, its arguments and its traceback) pass through it, in
  the API server, the worker and the CLI alike, whatever handler prints the record.

Secrets are learnt from the settings (:func:`remember`) as soon as they are read.
Very short secrets (under 4 characters) are not replaced in free text, where they
would garble every word that contains them; inside a URL they are masked all the same.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

MASK = "***"
MIN_SECRET_LENGTH = 4

_URL_CREDENTIALS = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*):(?P<secret>[^\s'\"]+)@"
    r"(?=[^@\s'\"]*(?:[\s'\"]|$))"
)
"""``scheme://user:password@`` up to the last ``@`` before the host (a password may
itself hold an unencoded ``@``)."""

_known: set[str] = set()
_lock = threading.Lock()


def secret_forms(secret: str) -> set[str]:
    """The ways a secret shows up in text: as is, percent-encoded, percent-decoded."""
    return {form for form in (secret, quote(secret, safe=""), unquote(secret)) if form}


def remember(*secrets: str | None) -> None:
    """Add secrets that :func:`mask` replaces from now on (in this process)."""
    with _lock:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                _known.update(f for f in secret_forms(secret) if len(f) >= MIN_SECRET_LENGTH)


def url_password(url: str) -> str | None:
    """The password written in a URL (decoded), or None; never raises."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password
    except Exception:  # an unreadable URL: fall back to the pattern
        found = _URL_CREDENTIALS.search(url)
        return unquote(found.group("secret")) if found else None


def remember_settings(settings: Any) -> None:
    """Learn the secrets of a :class:`baton.config.Settings`."""
    from baton.config import INSECURE_SECRET

    smtp = getattr(settings, "smtp_password", None)
    key = getattr(settings, "secret_key", None)
    remember(
        url_password(str(getattr(settings, "database_url", ""))),
        smtp.get_secret_value() if smtp is not None else None,
        key if key != INSECURE_SECRET else None,
    )


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URL passwords and known secrets (and ``secrets``) replaced."""
    masked = _URL_CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    extra = sorted((f for s in secrets for f in secret_forms(s)), key=len, reverse=True)
    for secret in extra + known:
        if secret in masked:
            masked = masked.replace(secret, MASK)
    return masked


def mask_exception(exc: BaseException) -> str:
    """The traceback of ``exc``, masked (for ``BATON_DEBUG``)."""
    return mask("".join(traceback.format_exception(exc)))


_factory_installed = False


def install_log_masking() -> None:
    """Mask every log record made in this process from now on (idempotent).

    The record factory is the one place every record passes, whichever logger made it
    (Baton's, uvicorn's, SQLAlchemy's) and whichever handler will print it. Arguments
    are masked one by one, so formatters that read them (uvicorn's access log) still
    work; a traceback is rendered and masked once, as the text handlers print."""
    global _factory_installed
    with _lock:
        if _factory_installed:
            return
        _factory_installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        with contextlib.suppress(Exception):  # masking must never lose a log line
            _mask_record(record)
        return record

    logging.setLogRecordFactory(factory)


def _mask_value(value: Any) -> Any:
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = str(value)
    masked = mask(text)
    return value if masked == text else masked


def _mask_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = mask(record.msg)
    else:
        record.msg = _mask_value(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_mask_value(a) for a in record.args)
    elif isinstance(record.args, dict):
        record.args = {k: _mask_value(v) for k, v in record.args.items()}
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
