"""Rendering a nurture template for one lead: subject, text and html parts in the
Jinja2 sandbox of :mod:`baton.domain.nurture_rules`, with every link of the email sent
through a hook (the engagement side turns it into a signed click URL).

The template was checked when the contract was validated (it compiles, names only known
variables, renders for a lead with every field and one with none), so rendering here
fails only on something validation could not foresee, and then with a
:class:`TemplateRenderError` naming the part.

Links: every http(s) URL in an ``href="..."`` of the html part and every bare http(s)
URL in the text part goes through ``link(url)``; the original URLs come back in
:attr:`RenderedNurtureEmail.links` (in order, once each), so a click redirect can be
limited to exactly the URLs the email contained. The unsubscribe URL is left alone.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from jinja2.exceptions import TemplateError

from baton.domain.errors import FieldProblem, ValidationFailed
from baton.domain.nurture_rules import (
    SUBJECT_MAX_CHARS,
    TEMPLATE_LEAD_FIELDS,
    UNSAFE_LINK,
    NurtureTemplate,
    TemplatePart,
    bounded_render,
    compile_part,
)

_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_BARE_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


class TemplateRenderError(ValidationFailed):
    """A template that failed for this lead (``nurture.templates.<name>.<part>``)."""

    title = "Template cannot be rendered"


@dataclass(frozen=True)
class TemplateContext:
    """What a template sees: the lead (fields and ``attributes``), the last rep who had
    it (or None), and the person's one-click unsubscribe URL."""

    lead: Mapping[str, Any]
    rep: Mapping[str, Any] | None
    unsubscribe_url: str

    def variables(self) -> dict[str, Any]:
        return {"lead": self.lead, "rep": self.rep, "unsubscribe_url": self.unsubscribe_url}


@dataclass(frozen=True)
class RenderedNurtureEmail:
    subject: str
    text: str
    html: str | None
    links: list[str]
    """The original URLs the email links to (before ``link`` rewrote them)."""


def lead_context(lead: Mapping[str, Any]) -> dict[str, Any]:
    """A template's ``lead`` from a leads row (or any mapping with its columns): the
    template fields (None when missing) and ``attributes`` (a dict)."""
    attributes = lead.get("attributes")
    return {
        **{name: _text(lead.get(name)) for name in TEMPLATE_LEAD_FIELDS},
        "attributes": dict(attributes) if isinstance(attributes, Mapping) else {},
    }


def rep_context(name: str | None, email: str | None) -> dict[str, Any] | None:
    """A template's ``rep``, or None without one."""
    if not name and not email:
        return None
    first = name.split()[0] if name and name.split() else None
    return {"name": name, "first_name": first, "email": email}


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip() or None
    return value


def render_step(
    template: NurtureTemplate,
    context: TemplateContext,
    *,
    link: Callable[[str], str] = lambda url: url,
    name: str = "template",
) -> RenderedNurtureEmail:
    """The email ``template`` makes for ``context``, its links passed through
    ``link``. ``name`` is the template's name in the contract (for errors)."""
    links: list[str] = []
    skip = {context.unsubscribe_url}
    hosts = template_hosts(template.text, template.html)

    def hook(url: str) -> str:
        if url in skip or _authority(url) not in hosts:
            # Not a site the template itself names (a lead's own data printed as a
            # URL): left as it is, never made into a redirect through Baton.
            return url
        if url not in links:
            links.append(url)
        return link(url)

    variables = context.variables()
    subject = " ".join(_render(template.subject, "subject", variables, name).split())
    if len(subject) > SUBJECT_MAX_CHARS:
        subject = subject[: SUBJECT_MAX_CHARS - 1].rstrip() + "…"
    text = _rewrite_text(_render(template.text, "text", variables, name), hook)
    html = (
        _rewrite_html(_render(template.html, "html", variables, name), hook)
        if template.html is not None
        else None
    )
    return RenderedNurtureEmail(subject=subject, text=text, html=html, links=links)


_LITERAL_URL = re.compile(r"""https?://[^\s<>"'`{}/?#\\]+""", re.IGNORECASE)


@lru_cache(maxsize=256)
def template_hosts(text: str, html: str | None) -> frozenset[tuple[str, str]]:
    """(scheme, host) of every URL written literally in the template's source: the only
    sites its click links may lead to (a URL a lead's data brings in is not tracked,
    so Baton never redirects to it)."""
    found = _LITERAL_URL.findall(text) + (_LITERAL_URL.findall(html) if html else [])
    return frozenset(a for a in map(_authority, found) if a is not None)


def _authority(url: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "\\" in url:
        return None
    return parts.scheme.lower(), parts.netloc.lower()


def _render(source: str, part: TemplatePart, variables: dict[str, Any], name: str) -> str:
    try:
        rendered = bounded_render(compile_part(source, part), variables)
    except TemplateError as exc:
        raise _failed(name, part, str(exc)) from None
    except Exception as exc:
        raise _failed(name, part, f"{type(exc).__name__}: {exc}") from None
    return rendered


def _failed(name: str, part: str, message: str) -> TemplateRenderError:
    where = f"nurture.templates.{name}.{part}"
    return TemplateRenderError(
        f"template {name} cannot be rendered: {message}", [FieldProblem(where, message)]
    )


def _rewrite_html(body: str, hook: Callable[[str], str]) -> str:
    # A template that passed validation links only to web addresses; a lead's own data
    # (``href="{{ lead.attributes.site | default(...) }}"``) must not add a script link.
    body = UNSAFE_LINK.sub(lambda m: f"{m.group(1)}#blocked:", body)

    def replace(match: re.Match[str]) -> str:
        original = html_lib.unescape(match.group(3))
        return f"{match.group(1)}{match.group(2)}{html_lib.escape(hook(original))}{match.group(2)}"

    return _HREF.sub(replace, body)


def _rewrite_text(body: str, hook: Callable[[str], str]) -> str:
    def replace(match: re.Match[str]) -> str:
        url = match.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:
            # A closing bracket that belongs to the URL stays (wiki-style links).
            if url[-1] == ")" and url.count("(") >= url.count(")"):
                break
            tail = url[-1] + tail
            url = url[:-1]
        return hook(url) + tail

    return _BARE_URL.sub(replace, body)
