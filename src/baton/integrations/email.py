"""Email adapter: an RFC 5322 message received by ``baton inbound-smtp``, read into one
:class:`~baton.domain.intake.IntakeItem`.

The listener stores the message exactly as received (the intake log's ``body``; the
envelope sender and recipients go in the request's headers as ``x-envelope-from`` and
``x-envelope-to``), so a message is re-read by ``baton intake retry`` like any hook
request. What a message is, decided here from its headers alone:

* **a bounce** (a delivery status notification, RFC 3464: ``multipart/report;
  report-type=delivery-status``): per failed recipient its ``Final-Recipient``, its
  ``Action`` and its ``Status``; ``5.x.x`` with ``Action: failed`` is a hard bounce,
  ``4.x.x`` or ``Action: delayed`` a soft one. No lead is captured and no activity
  recorded: the service marks the address as bouncing on its lead(s).
* **an automatic message** (``Auto-Submitted`` other than ``no``, ``X-Autoreply``,
  ``Precedence: bulk/junk/list/auto_reply``, an "Out of office" / "Automatic reply"
  subject, the null envelope sender ``<>`` that RFC 5321 reserves for notifications,
  or a ``noreply@``/``mailer-daemon@`` sender with no person in ``Reply-To``):
  recorded in the intake log, never a hand-raise, never answered.
* **a reply to a message Baton sent**: every Baton email carries ``Message-ID:
  <outbox-N.KEY@baton>``; an ``In-Reply-To`` or ``References`` naming one threads the
  message to that outbox row's lead (the service looks it up and checks ``KEY``) and
  records ``email_reply``, whichever address the person writes from.
* otherwise **a new email**: a hand-raise (``contact_sales``, or the endpoint's
  ``event_type``) by the sender, captured by address like any lead.

The item's upstream id is the ``Message-ID`` (a redelivered message is recognized);
a message without one gets ``sha256:<digest of the bytes>``. The text is the
``text/plain`` part when there is one, else the HTML part reduced to its text
(:mod:`html.parser`, without ``script``/``style``), bounded to
:data:`MAX_TEXT_CHARS`. Attachments are noted (file name, type, size), never stored
in the item. Baton never replies to any inbound message, so nothing here can start a
mail loop.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Literal

from baton.domain.errors import FieldProblem
from baton.domain.intake import Delivery, EndpointConfig, IntakeItem, PayloadRefused

MAX_TEXT_CHARS = 10_000
"""Longest message text kept in the activity (the rest is cut, with a mark)."""
MAX_SUBJECT_CHARS = 500
MAX_ATTACHMENTS_NOTED = 20
"""Attachments listed one by one (the activity's properties stay within the JSON
limits); ``attachment_count`` says how many there were in all."""
MAX_REFERENCES_KEPT = 20
MAX_REFERENCES_READ = 100
"""Message ids read from ``In-Reply-To`` and ``References``: the newest, where the email
a reply answers is named; a crafted header of thousands is not read to its end."""
MAX_BOUNCED = 100
"""Failed recipients read from one delivery status notification (a real one names a
few; each is an update of the leads with that address)."""
DEFAULT_EVENT_TYPE = "contact_sales"
REPLY_EVENT_TYPE = "email_reply"

MessageKind = Literal["new", "reply", "bounce", "automatic"]

_OUTBOX_ID = re.compile(
    r"<\s*outbox-(\d{1,18})(?:\.([A-Za-z0-9_-]{8,40}))?@baton\s*>", re.IGNORECASE
)
"""A Baton Message-ID: ``<outbox-N.KEY@baton>`` (``KEY`` is checked by the service
against the row, see :mod:`baton.services.email_threads`; older mail has no key)."""
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,900}>")
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[\s_-]*(reply|response|antwort)|out of (the )?office|"
    r"autoreply|abwesenheit|absence|r[ée]ponse automatique|auto:)",
    re.IGNORECASE,
)
_NO_REPLY = re.compile(
    r"(no|do[-_.]?not)[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?\b", re.IGNORECASE
)
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_ORIGINAL_ID = re.compile(r"^message-id:\s*(<[^<>\s]{1,900}>)", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})")
_WHITESPACE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient a delivery status notification reports as not delivered."""

    address: str
    action: str
    status: str
    hard: bool
    diagnostic: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "action": self.action,
            "status": self.status,
            "hard": self.hard,
            "diagnostic": self.diagnostic,
        }


# --- reading -------------------------------------------------------------------------


def parse(raw: bytes) -> EmailMessage:
    """The message in ``raw`` (``policy.default``: headers decoded, lenient on defects)."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def read(delivery: Delivery, endpoint: EndpointConfig) -> list[IntakeItem]:
    """One item for the message in ``delivery.body`` (see the module docstring)."""
    if not delivery.body.strip():
        raise PayloadRefused("the message is empty", [FieldProblem("body", "empty message")])
    message = parse(delivery.body)
    upstream_id = message_id(message) or "sha256:" + hashlib.sha256(delivery.body).hexdigest()
    kind = message_kind(message, envelope_from=delivery.headers.get("x-envelope-from"))
    properties: dict[str, Any] = {
        "channel": "email",
        "kind": kind,
        "message_id": message_id(message),
        "subject": subject_of(message),
    }
    sent = _date(message)
    if sent is not None:
        properties["sent_at"] = sent
    if kind == "bounce":
        bounced = bounced_recipients(message)
        properties["bounced"] = [b.as_dict() for b in bounced]
        originals = _original_references(message)
        properties["outbox_ids"] = outbox_ids(originals)
        properties["outbox_refs"] = outbox_refs(originals)
        return [IntakeItem(upstream_id=upstream_id, properties=properties, raw=None)]
    sender = sender_of(message)
    lead: dict[str, Any] = {}
    if sender is not None:
        lead = _lead_fields(sender)
    properties["from"] = sender.addr_spec if sender is not None else None
    properties["text"] = text_of(message)
    properties["attachments"] = attachments_of(message)
    properties["attachment_count"] = attachment_count(message)
    references = thread_references(message)
    if references:
        properties["in_reply_to"] = _header(message, "In-Reply-To")
        properties["references"] = references[:MAX_REFERENCES_KEPT]
    threaded = outbox_ids(references)
    if threaded:
        properties["outbox_ids"] = threaded
        properties["outbox_refs"] = outbox_refs(references)
    if kind == "automatic":
        return [IntakeItem(upstream_id=upstream_id, lead=lead, properties=properties)]
    if sender is None:
        raise PayloadRefused(
            "the message has no sender address",
            [FieldProblem("from", "no address in the From header")],
        )
    event_type = REPLY_EVENT_TYPE if kind == "reply" else endpoint.event_type or DEFAULT_EVENT_TYPE
    return [
        IntakeItem(
            upstream_id=upstream_id,
            lead=lead,
            event_type=event_type,
            occurred_at=delivery.received_at,
            properties=properties,
        )
    ]


def message_kind(message: Message, *, envelope_from: str | None = None) -> MessageKind:
    """What the message is: a bounce, an automatic message, a reply to a Baton email, or
    a new email (in that order of precedence)."""
    if is_delivery_report(message):
        return "bounce"
    if is_automatic(message, envelope_from=envelope_from):
        return "automatic"
    if outbox_ids(thread_references(message)):
        return "reply"
    return "new"


def is_delivery_report(message: Message) -> bool:
    """``multipart/report; report-type=delivery-status`` (RFC 3464)."""
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "")).lower() == "delivery-status"
    )


def is_automatic(message: Message, *, envelope_from: str | None = None) -> bool:
    """An auto-reply, out-of-office, list or other machine-sent message (RFC 3834's
    ``Auto-Submitted``, the common vendor headers, the null envelope sender, a
    no-reply or mailer-daemon sender)."""
    auto = _header(message, "Auto-Submitted")
    if auto is not None and auto.split(";")[0].strip().lower() not in ("", "no"):
        return True
    if _header(message, "X-Autoreply") is not None or _header(message, "X-Autorespond"):
        return True
    precedence = (_header(message, "Precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return True
    if envelope_from is not None and envelope_from.strip() in ("", "<>"):
        return True
    sender = sender_of(message)
    if sender is not None and _NO_REPLY.match(sender.username or ""):
        return True  # a no-reply mailer with no person to answer
    return bool(_AUTO_SUBJECT.match(subject_of(message) or ""))


def message_id(message: Message) -> str | None:
    """The ``Message-ID`` as ``<id>``, or ``None`` when absent or unreadable."""
    found = _MESSAGE_ID.search(_header(message, "Message-ID") or "")
    return found.group(0) if found else None


def thread_references(message: Message) -> list[str]:
    """The message ids of ``In-Reply-To`` then ``References`` (newest first, no
    repeats): what the message answers."""
    seen: dict[str, None] = {}
    for name in ("In-Reply-To", "References"):
        ids = _MESSAGE_ID.findall(_header(message, name) or "")
        # A thread is read newest first; a header of thousands of ids (a crafted one)
        # is cut to the newest MAX_REFERENCES_READ, so the work per message is bounded.
        for found in (ids[::-1] if name == "References" else ids)[:MAX_REFERENCES_READ]:
            seen.setdefault(found, None)
    return list(seen)[:MAX_REFERENCES_READ]


def outbox_ids(references: Iterable[str]) -> list[int]:
    """The outbox rows named by ``<outbox-N.KEY@baton>`` (or unkeyed) ids among
    ``references``, in order; which of them to believe is the service's decision."""
    out: dict[int, None] = {}
    for reference in references:
        found = _OUTBOX_ID.fullmatch(reference.strip())
        if found:
            out.setdefault(int(found.group(1)), None)
            if len(out) >= MAX_REFERENCES_READ:
                break
    return list(out)


def outbox_refs(references: Iterable[str]) -> list[str]:
    """``N.KEY`` of the keyed ``<outbox-N.KEY@baton>`` ids among ``references``, in
    order (the service believes one only when ``KEY`` is row ``N``'s)."""
    out: dict[str, None] = {}
    for reference in references:
        found = _OUTBOX_ID.fullmatch(reference.strip())
        if found and found.group(2):
            out.setdefault(f"{int(found.group(1))}.{found.group(2)}", None)
            if len(out) >= MAX_REFERENCES_READ:
                break
    return list(out)


def sender_of(message: Message) -> Address | None:
    """The person who wrote: the first address of ``From`` (else ``Reply-To``, else
    ``Sender``); when ``From`` is a no-reply address (a website's form mailer sends as
    ``noreply@`` with the visitor in ``Reply-To``), the ``Reply-To`` address."""
    found: list[Address] = []
    for name in ("From", "Reply-To", "Sender"):
        found.extend(a for a in _addresses(message, name) if "@" in a.addr_spec)
    for address in found:
        if not _NO_REPLY.match(address.username or ""):
            return address
    return found[0] if found else None


def split_name(display_name: str) -> tuple[str | None, str | None]:
    """First and last name from a display name: ``Dana Reyes``, ``Reyes, Dana``,
    ``"Dana M. Reyes"`` (the last word is the last name); one word is a first name."""
    name = " ".join(display_name.replace('"', " ").split())
    if not name or "@" in name:
        return None, None
    if "," in name:
        last, _, first = name.partition(",")
        return (first.strip() or None), (last.strip() or None)
    first, _, last = name.rpartition(" ")
    if not first:
        return last, None
    return first, last


def subject_of(message: Message) -> str | None:
    subject = _header(message, "Subject")
    if subject is None:
        return None
    subject = " ".join(subject.split())
    return subject[:MAX_SUBJECT_CHARS] or None


def text_of(message: Message, *, limit: int = MAX_TEXT_CHARS) -> str:
    """The message's text: its ``text/plain`` body, else its HTML body as text; cut to
    ``limit`` characters."""
    plain: str | None = None
    html: str | None = None
    for part in _body_parts(message):
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = _content(part)
        elif kind == "text/html" and html is None:
            html = _content(part)
    if plain is not None and plain.strip():
        text = plain
    elif html is not None:
        text = html_to_text(html)
    else:
        text = plain or ""
    return bounded(_tidy(text), limit)


def html_to_text(html: str) -> str:
    """The visible text of an HTML document: tags dropped, ``script``/``style``/
    ``head`` content dropped, block elements and ``<br>`` as line breaks, entities
    decoded."""
    reader = _TextReader()
    reader.feed(html)
    reader.close()
    return _tidy("".join(reader.parts))


def attachments_of(message: Message) -> list[dict[str, Any]]:
    """File name, content type and decoded size of each attachment (the content itself
    is not kept)."""
    noted: list[dict[str, Any]] = []
    for part in message.walk():
        if part.is_multipart() or not _is_attachment(part):
            continue
        noted.append(
            {
                "filename": _filename(part),
                "content_type": part.get_content_type(),
                "size": _size(part),
            }
        )
        if len(noted) >= MAX_ATTACHMENTS_NOTED:
            break
    return noted


def attachment_count(message: Message) -> int:
    """How many attachments the message carries (all of them, not only those noted)."""
    return sum(1 for p in message.walk() if not p.is_multipart() and _is_attachment(p))


def bounced_recipients(message: Message) -> list[BouncedRecipient]:
    """Recipients a delivery status notification reports as failed or delayed."""
    out: list[BouncedRecipient] = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            recipient = block.get("final-recipient") or block.get("original-recipient")
            if not recipient:
                continue
            address = recipient.partition(";")[2].strip() or recipient.strip()
            address = address.strip("<>").strip()
            action = (block.get("action") or "").strip().lower()
            status = (block.get("status") or "").strip()
            code = _STATUS.match(status)
            klass = code.group(1) if code else ""
            if action in ("delivered", "relayed", "expanded") or klass == "2":
                continue
            if action not in ("failed", "delayed") and not klass:
                continue
            hard = action == "failed" and klass != "4"
            diagnostic = block.get("diagnostic-code")
            if len(out) >= MAX_BOUNCED:
                return out
            out.append(
                BouncedRecipient(
                    address=address[:254],
                    action=action or "failed",
                    status=code.group(0).strip() if code else status[:20],
                    hard=hard,
                    diagnostic=diagnostic.strip()[:500] if diagnostic else None,
                )
            )
    return out


def bounded(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a visible mark."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


# --- helpers -------------------------------------------------------------------------


class _TextReader(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "noscript", "template"})
    _BLOCK = frozenset(
        {
            "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4",
            "h5", "h6", "blockquote", "pre", "hr", "section", "article", "header",
            "footer", "dd", "dt",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\xa0", " ")
    lines = [_WHITESPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _header(message: Message, name: str) -> str | None:
    try:
        value = message.get(name)
    except Exception:  # a header the parser cannot decode counts as absent
        return None
    return None if value is None else str(value)


def _addresses(message: Message, name: str) -> list[Address]:
    try:
        header = message.get(name)
    except Exception:
        header = None
    if header is None:
        return []
    found = getattr(header, "addresses", None)
    if found is not None:
        return list(found)
    out: list[Address] = []
    for display, spec in getaddresses([str(header)]):
        local, _, domain = spec.partition("@")
        if local and domain:
            try:
                out.append(Address(display_name=display, username=local, domain=domain))
            except (ValueError, TypeError):
                continue
    return out


def _lead_fields(sender: Address) -> dict[str, Any]:
    first, last = split_name(sender.display_name or "")
    fields: dict[str, Any] = {"email": sender.addr_spec}
    if first:
        fields["first_name"] = first[:200]
    if last:
        fields["last_name"] = last[:200]
    return fields


def _date(message: Message) -> str | None:
    value = _header(message, "Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def _is_attachment(part: Message) -> bool:
    """An attachment: so declared, or a part that is not text (an image, a PDF); a text
    part counts only when declared inline with a file name."""
    disposition = part.get_content_disposition()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() in ("text", "multipart", "message"):
        return disposition == "inline" and _filename(part) is not None
    return True


def _size(part: Message) -> int:
    """Decoded size in bytes (an attached message: its size as sent)."""
    try:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            return len(payload)
        return len(part.as_bytes())
    except Exception:
        return 0


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return name[:300] if name else None


def _body_parts(message: Message) -> Iterable[Message]:
    """Leaf parts that are candidates for the message's text (not attachments, not
    inside an attached message)."""
    if not message.is_multipart():
        yield message
        return
    stack: list[Message] = [message]
    while stack:
        part = stack.pop(0)
        if part.get_content_type() == "message/rfc822":
            continue
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack[0:0] = [c for c in children if isinstance(c, Message)]
            continue
        if not _is_attachment(part):
            yield part


def _content(part: Message) -> str:
    try:
        if isinstance(part, EmailMessage):
            value = part.get_content()
            if isinstance(value, str):
                return value
        payload = part.get_payload(decode=True)
    except Exception:
        payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, errors="replace")
        except LookupError:
            return payload.decode("utf-8", errors="replace")
    return ""


def _status_blocks(part: Message) -> list[Mapping[str, str]]:
    """The header blocks of a ``message/delivery-status`` part, names lower-cased."""
    blocks: list[Mapping[str, str]] = []
    payload = part.get_payload()
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                blocks.append({k.lower(): str(v) for k, v in block.items()})
        if blocks:
            return blocks
    text = payload if isinstance(payload, str) else ""
    if not text:
        raw = part.get_payload(decode=True)
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else ""
    for chunk in re.split(r"\r?\n\s*\r?\n", text):
        fields: dict[str, str] = {}
        for line in chunk.splitlines():
            name, sep, value = line.partition(":")
            if sep and not line[:1].isspace():
                fields[name.strip().lower()] = value.strip()
        if fields:
            blocks.append(fields)
    return blocks


def _original_references(message: Message) -> list[str]:
    """Message ids of the returned original inside a bounce (its ``Message-ID``), so a
    bounce of a Baton email names its outbox row."""
    ids: list[str] = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            inner_message = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner_message, Message):
                found = message_id(inner_message)
                if found:
                    ids.append(found)
        elif kind == "text/rfc822-headers":
            found_header = _ORIGINAL_ID.search(_content(part))
            if found_header:
                ids.append(found_header.group(1))
    return ids
