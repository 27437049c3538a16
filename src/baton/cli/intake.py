"""`baton intake ...`: inbound endpoints (/hooks/NAME), the intake log, retries."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from baton.cli._common import LOCAL, ActorOption, work
from baton.cli._output import fail, print_records, say, show_list, when
from baton.domain.access import operator

endpoints_app = typer.Typer(
    help="Inbound endpoints (/hooks/NAME) for form tools, ad platforms, calendars and web "
    "forms; the raw intake log and retries.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

NAMES = {
    "name": "NAME",
    "kind": "--kind",
    "campaign": "--campaign",
    "event_type": "--event-type",
    "mapping": "--map",
    "fetch_token": "--fetch-token",
    "fetch_base_url": "--fetch-base-url",
    "return_urls": "--return-url",
    "honeypot_field": "--honeypot",
    "max_body_bytes": "--max-body",
}

MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        help="FIELD=PATH: a lead field (email, first_name...), attributes.NAME or "
        "properties.NAME read from a dot path (contact.email, answers.0.value); also "
        "upstream_id=PATH, occurred_at=PATH, event_type_path=PATH and "
        "event_types.VALUE=TYPE (TYPE - records only the capture). On update, FIELD=- "
        "removes a key. Repeat.",
    ),
]
MappingJson = Annotated[
    str | None,
    typer.Option("--mapping-json", help="The whole mapping as a JSON object (replaces it)."),
]
SourceOption = Annotated[
    str | None, typer.Option("--source", help="The source its leads get (e.g. website).")
]
CampaignOption = Annotated[str | None, typer.Option("--campaign", help="Default campaign.")]
EventOption = Annotated[
    str | None,
    typer.Option(
        "--event-type",
        help="Activity a submission records, e.g. contact_sales (a hand-raise); default "
        "form_submit for generic and web_to_lead.",
    ),
]
SecretOption = Annotated[
    str | None,
    typer.Option(
        "--secret",
        help="What the platform signs with or sends (generated for generic, typeform and "
        "google_ads_lead_form when not given; shown only once).",
    ),
]
FetchTokenOption = Annotated[
    str | None,
    typer.Option("--fetch-token", help="Token to read full records (Meta, HubSpot)."),
]
FetchBaseOption = Annotated[
    str | None, typer.Option("--fetch-base-url", help="Base URL of the platform's API.")
]
ReturnOption = Annotated[
    list[str] | None,
    typer.Option("--return-url", help="Allowed return URL of a web form (repeat)."),
]
HoneypotOption = Annotated[
    str | None,
    typer.Option("--honeypot", help="A hidden form field people leave empty (bots fill it)."),
]
RateOption = Annotated[
    int | None, typer.Option("--rate", min=1, help="Requests a minute before 429.")
]
BodyOption = Annotated[
    int | None, typer.Option("--max-body", min=256, help="Largest body in bytes (413 over).")
]


def _mapping(pairs: list[str] | None, base: dict[str, Any]) -> dict[str, Any]:
    """``--map`` pairs applied to ``base``: ``event_types.VALUE=TYPE`` nests, ``=-``
    removes a key (or, for an event type, records only the capture)."""
    from baton.services.imports import parse_column_map

    mapping: dict[str, Any] = json.loads(json.dumps(base))
    try:
        pairs_map = parse_column_map(pairs or [])
    except ValueError as exc:
        raise fail(
            f"--map takes {exc}".replace("HEADER", "FIELD").replace("FIELD=FIELD", "FIELD=PATH")
        ) from None
    for key, path in pairs_map.items():
        if key.startswith("event_types."):
            value = key.removeprefix("event_types.")
            mapping.setdefault("event_types", {})[value] = None if path == "-" else path
        elif path == "-":
            mapping.pop(key, None)
        else:
            mapping[key] = path
    return mapping


def _json_mapping(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise fail(f"--mapping-json: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise fail("--mapping-json: a JSON object")
    return value


def _show(view: Any) -> None:
    print_records(
        [
            (
                f"endpoint {view.name}",
                [
                    ("hook", view.path),
                    ("kind", view.kind),
                    ("source", view.source),
                    ("campaign", view.campaign or "-"),
                    ("event type", view.event_type or "(the kind's default)"),
                    ("mapping", json.dumps(view.mapping, ensure_ascii=False)),
                    ("secret", "set" if view.secret_set else "none"),
                    ("fetch token", "set" if view.fetch_token_set else "none"),
                    ("return URLs", ", ".join(view.return_urls) or "-"),
                    ("honeypot", view.honeypot_field or "-"),
                    ("limits", f"{view.rate_per_minute}/min, {view.max_body_bytes:,} bytes"),
                    ("active", "yes" if view.active else "no"),
                    ("throttled", str(view.throttled_count)),
                ],
            )
        ]
    )


@endpoints_app.command("add")
def intake_add(
    name: str,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="generic, typeform, hubspot, "
            "web_to_lead, meta_lead_ads, google_ads_lead_form, "
            "calendly or email.",
        ),
    ],
    source: Annotated[str, typer.Option("--source", help="The source its leads get.")],
    campaign: CampaignOption = None,
    event_type: EventOption = None,
    map_: MapOption = None,
    mapping_json: MappingJson = None,
    secret: SecretOption = None,
    fetch_token: FetchTokenOption = None,
    fetch_base_url: FetchBaseOption = None,
    return_url: ReturnOption = None,
    honeypot: HoneypotOption = None,
    rate: RateOption = None,
    max_body: BodyOption = None,
    actor: ActorOption = "cli",
) -> None:
    """Add an inbound endpoint: the platform posts to /hooks/NAME."""
    from baton.services.intake import add_endpoint

    data: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "source": source,
        "campaign": campaign,
        "event_type": event_type,
        "mapping": _mapping(map_, _json_mapping(mapping_json) or {}),
        "secret": secret,
        "fetch_token": fetch_token,
        "fetch_base_url": fetch_base_url,
        "return_urls": return_url or [],
        "honeypot_field": honeypot,
    }
    if rate is not None:
        data["rate_per_minute"] = rate
    if max_body is not None:
        data["max_body_bytes"] = max_body
    with work(NAMES) as ctx:
        view, generated = add_endpoint(ctx, data, actor=operator(actor))
    say(f"endpoint {view.name} added: POST {view.path} ({view.kind}, source {view.source})")
    if generated:
        say(f"secret (shown only now; give it to the platform): {generated}")


@endpoints_app.command("update")
def intake_update(
    name: str,
    source: SourceOption = None,
    campaign: CampaignOption = None,
    event_type: EventOption = None,
    map_: MapOption = None,
    mapping_json: MappingJson = None,
    secret: SecretOption = None,
    fetch_token: FetchTokenOption = None,
    fetch_base_url: FetchBaseOption = None,
    return_url: ReturnOption = None,
    honeypot: HoneypotOption = None,
    rate: RateOption = None,
    max_body: BodyOption = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Turn the hook on or off.")
    ] = None,
    actor: ActorOption = "cli",
) -> None:
    """Change an endpoint (a mapping fix: then `baton intake retry --endpoint NAME`)."""
    from baton.services.intake import show_endpoint, update_endpoint

    changes: dict[str, Any] = {}
    for key, value in (
        ("source", source),
        ("campaign", campaign),
        ("event_type", event_type),
        ("secret", secret),
        ("fetch_token", fetch_token),
        ("fetch_base_url", fetch_base_url),
        ("honeypot_field", honeypot),
        ("rate_per_minute", rate),
        ("max_body_bytes", max_body),
        ("active", active),
    ):
        if value is not None:
            changes[key] = value
    if return_url:
        changes["return_urls"] = return_url
    with work(NAMES) as ctx:
        replaced = _json_mapping(mapping_json)
        if map_ or replaced is not None:
            base = (
                replaced if replaced is not None else show_endpoint(ctx, name, actor=LOCAL).mapping
            )
            changes["mapping"] = _mapping(map_, base)
        if not changes:
            raise fail("nothing to change: give an option such as --map or --rate")
        view = update_endpoint(ctx, name, changes, actor=operator(actor))
    _show(view)


@endpoints_app.command("list")
def intake_list() -> None:
    """Every inbound endpoint, with its requests, failures and throttled count."""
    from baton.services.intake import list_endpoints

    with work() as ctx:
        views = list_endpoints(ctx, actor=LOCAL)
    columns = [
        ("name", False),
        ("kind", False),
        ("source", True),
        ("event", False),
        ("secret", False),
        ("active", False),
        ("requests", False),
        ("failed", False),
        ("throttled", False),
        ("last request", False),
    ]
    rows = [
        [
            escape(v.name),
            v.kind,
            escape(v.source),
            v.event_type or "-",
            "set" if v.secret_set else "none",
            "yes" if v.active else "no",
            str(v.requests),
            str(v.failed_requests),
            str(v.throttled_count),
            when(v.last_request_at),
        ]
        for v in views
    ]
    show_list("Inbound endpoints", columns, rows, record="endpoint")


@endpoints_app.command("log")
def intake_log(
    status: Annotated[
        str | None,
        typer.Option("--status", help="received, processed, partial, failed or refused."),
    ] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="One endpoint.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    before: Annotated[int | None, typer.Option("--before", help="Older than this id.")] = None,
) -> None:
    """The intake log: every request stored raw, newest first, with what became of it."""
    from baton.services.intake import intake_log as read_log

    with work() as ctx:
        found = read_log(
            ctx, actor=LOCAL, status=status, endpoint=endpoint, limit=limit, before=before
        )
    columns = [
        ("id", False),
        ("received", False),
        ("endpoint", False),
        ("status", False),
        ("items", False),
        ("failed", False),
        ("bytes", False),
        ("error", True),
    ]
    rows = [
        [
            str(r.id),
            when(r.received_at),
            escape(r.endpoint),
            r.status,
            str(r.items),
            str(r.failed_items),
            str(r.size),
            escape(_short_error(r.error)),
        ]
        for r in found
    ]
    show_list("Intake log", columns, rows, record="request")


def _short_error(error: str | None) -> str:
    if not error:
        return ""
    try:
        data = json.loads(error)
    except ValueError:
        return error[:200]
    if isinstance(data, dict):
        detail = str(data.get("detail", "") or "")
        parts = [detail]
        # A 422's detail usually already spells its field problems out: never twice.
        problems = [f"{e.get('loc')}: {e.get('message')}" for e in data.get("errors", [])]
        parts += [p for p in problems if p not in detail][:3]
        return "; ".join(p for p in parts if p)[:300]
    return error[:200]


@endpoints_app.command("show")
def intake_show(
    request_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
) -> None:
    """One logged request: headers, the raw body, and each submission with its errors."""
    from baton.services.intake import show_request

    with work() as ctx:
        detail = show_request(ctx, request_id, actor=LOCAL)
    s = detail.summary
    print_records(
        [
            (
                f"request {s.id}",
                [
                    ("endpoint", s.endpoint),
                    ("received", when(s.received_at)),
                    ("from", s.remote_address or "-"),
                    ("status", s.status),
                    ("error", _short_error(s.error) or "-"),
                    ("content type", s.content_type),
                    ("bytes", str(s.size)),
                ],
            )
        ]
    )
    say("headers:")
    for key, value in detail.headers.items():
        say(f"  {key}: {value}")
    if detail.body_text is not None:
        say("body:")
        say(detail.body_text)
    else:
        say("body (base64):")
        say(detail.body_base64 or "")
    for item in detail.items:
        errors = "; ".join(f"{e.get('loc')}: {e.get('message')}" for e in item.errors)
        lead = f" lead {item.lead_id}" if item.lead_id else ""
        dup = f" (replay of item {item.duplicate_of})" if item.duplicate_of else ""
        upstream = f" [{item.upstream_id}]" if item.upstream_id else ""
        why = f" - {errors}" if errors else ""
        say(f"item {item.position}{upstream}: {item.status}{lead}{dup}{why}")


@endpoints_app.command("retry")
def intake_retry(
    request_ids: Annotated[
        list[int] | None, typer.Argument(metavar="[ID]...", help="Requests to retry.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Every failed request of one endpoint.")
    ] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed request.")] = False,
) -> None:
    """Read failed requests again with the endpoint's current mapping; submissions
    already processed are never done twice."""
    from baton.services.intake import retry

    if not request_ids and endpoint is None and not all_failed:
        raise fail("say which: request IDs, --endpoint NAME or --all-failed")
    with work() as ctx:
        report = retry(
            ctx, actor=LOCAL, request_ids=request_ids, endpoint=endpoint, all_failed=all_failed
        )
    say(
        f"{report.requests} request(s) read again: {report.processed} submission(s) "
        f"processed, {report.failed} still failing, {report.awaiting_fetch} awaiting a fetch"
    )
    for note in report.skipped:
        say(f"skipped {note}")
    if report.failed:
        say("see why with: baton intake log --status failed; baton intake show ID")
