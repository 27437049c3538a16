"""The lead list (``/leads``) and the lead page (``/leads/{id}``).

The list is :func:`baton.services.lead_search.search_leads` as a person uses it: a
search box (word prefixes of email, name and company, through the index), filters
(stage, grade, source, tag, owner rep), sort links, pages, saved filters (save the
current one under a name, pick one, delete one's own), a CSV download of every lead
the filters match (through :mod:`baton.services.exports`, the path that neutralises
formulas) and, for those who may capture leads, a CSV upload that runs the CLI's
import (:func:`baton.services.imports.import_leads`) and shows its report with the
rejected lines to download. The search form is a plain GET form; our JavaScript only
refreshes the results as one types (``/leads?…&partial=1`` answers the results alone).

The lead page gathers what the lead use cases return: details, score with its
explanation and what stands between the lead and an MQL, stage history (who and why),
handoffs with their verdicts, timeline, notes and tags (add both). A lead out of the
reader's reach is the 404 page, as for one that does not exist.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from baton.api.deps import Ctx
from baton.domain.access import Action, Principal, reach
from baton.domain.activities import MAX_ID
from baton.domain.errors import Conflict, FieldProblem, Forbidden, NotFound, ValidationFailed
from baton.domain.lifecycle import Stage
from baton.domain.search import LeadQuery, LeadSort, read_lead_query
from baton.services import handoffs as handoff_service
from baton.services import notes as note_service
from baton.services import saved_filters as filter_service
from baton.services.exports import lead_export
from baton.services.imports import (
    ImportFileError,
    import_leads,
    parse_column_map,
    write_lines_to_mend,
)
from baton.services.lead_search import search_leads
from baton.services.leads import get_lead, stage_history
from baton.services.scoring import lead_score
from baton.services.timeline import lead_timeline
from baton.web.deps import PageUser
from baton.web.forms import FormUser
from baton.web.render import redirect, render

router = APIRouter(include_in_schema=False)

LeadId = Annotated[int, Path(ge=1, le=MAX_ID)]
FilterId = Annotated[int, Path(ge=1, le=MAX_ID)]
MAX_UPLOAD = 20 * 1024 * 1024
"""Largest CSV the page takes (bigger files: ``baton import leads`` on the server)."""
SORTS = {
    LeadSort.NAME: "Name",
    LeadSort.SCORE: "Score",
    LeadSort.CREATED: "Created",
    LeadSort.LAST_ACTIVITY: "Last activity",
}
QUERY_FIELDS = ("q", "stage", "grade", "source", "tag", "owner", "sort", "order", "offset")


def _may(principal: Principal, action: Action) -> bool:
    try:
        reach(principal, action)
    except Forbidden:
        return False
    return True


def _raw_query(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {
        "q": params.get("q"),
        "stage": params.getlist("stage"),
        "grade": params.getlist("grade"),
        "source": params.get("source"),
        "tag": params.get("tag"),
        "owner": params.get("owner"),
        "sort": params.get("sort") or None,
        "order": params.get("order") or None,
        "offset": params.get("offset") or None,
    }


def query_params(query: LeadQuery, **changes: Any) -> str:
    """The list's URL query for ``query`` (defaults left out) with ``changes``."""
    values: dict[str, Any] = {**query.criteria(), "offset": query.offset, **changes}
    values.pop("limit", None)
    pairs: list[tuple[str, str]] = []
    for key in QUERY_FIELDS:
        value = values.get(key)
        if value in (None, "", [], 0) or (key == "sort" and value == "created"):
            continue
        if key == "order" and value == "desc":
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, str(item)))
    return urlencode(pairs)


def _sort_link(query: LeadQuery, sort: LeadSort) -> dict[str, str]:
    """A column head's link: sort by it (name: A→Z first; others: highest first), or
    flip the order when it is the current sort."""
    if query.sort is sort:
        order = "asc" if query.order == "desc" else "desc"
        state = "descending" if query.order == "desc" else "ascending"
    else:
        order = "asc" if sort is LeadSort.NAME else "desc"
        state = "none"
    return {
        "url": "/leads?" + query_params(query, sort=sort.value, order=order, offset=0),
        "state": state,
    }


@router.get("/leads", response_model=None)
def lead_list(request: Request, ctx: Ctx, user: PageUser) -> HTMLResponse:
    actor = user.principal
    problems: list[FieldProblem] = []
    picked = None
    raw = _raw_query(request)
    filter_param = request.query_params.get("filter")
    if filter_param:
        try:
            filter_id = int(filter_param)
            if not 1 <= filter_id <= MAX_ID:
                raise NotFound("no such saved filter")
            picked = filter_service.get_saved_filter(ctx, filter_id, actor=actor)
        except (ValueError, NotFound):
            problems.append(FieldProblem("filter", "no such saved filter"))
        else:
            raw = {**picked.query.criteria(), "offset": raw["offset"]}
    try:
        query = read_lead_query(raw)
        results = search_leads(ctx, query, actor=actor)
    except ValidationFailed as exc:
        problems += exc.problems
        query, results = LeadQuery(), None
    values = {
        "query": query,
        "results": results,
        "problems": problems,
        "errors": {p.loc: p.message for p in problems},
        "raw": raw,
        "stages": [s.value for s in Stage],
        "grades": ["A", "B", "C", "D"],
        "sorts": {s.value: label for s, label in SORTS.items()},
        "sort_links": {s.value: _sort_link(query, s) for s in SORTS},
        "here": query_params(query),
        "page_url": lambda offset: "/leads?" + query_params(query, offset=offset),
        "saved": filter_service.list_saved_filters(ctx, actor=actor),
        "picked": picked,
        "may_import": _may(actor, Action.CAPTURE_LEAD),
        "may_save": actor.user_id is not None,
        "user_id": actor.user_id,
        "is_admin": actor.role is not None and actor.role.value == "admin",
    }
    if request.query_params.get("partial"):
        return render(request, "leads/_results.html", values)
    return render(request, "leads/list.html", values, status=422 if problems else 200)


@router.get("/leads/export.csv", response_model=None)
def export_csv(request: Request, ctx: Ctx, user: PageUser) -> Response:
    """Every lead the list's filters match (all pages), as the export writes them."""
    raw = _raw_query(request)
    try:
        query = read_lead_query(raw)
        export = lead_export(
            ctx,
            actor=user.principal,
            filters={
                "q": query.q or None,
                "stage": [s.value for s in query.stage],
                "grade": list(query.grade),
                "source": query.source,
                "tag": query.tag,
                "owner": query.owner,
            },
        )
    except ValidationFailed as exc:
        detail = "; ".join(f"{p.loc}: {p.message}" for p in exc.problems) or exc.detail
        return redirect(request, "/leads", f"Not downloaded: {detail}", "error")
    return StreamingResponse(
        export.chunks("csv"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename("csv")}"'},
    )


@router.post("/leads/filters", response_model=None)
def save_filter(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    name: Annotated[str, Form(max_length=100)] = "",
    shared: Annotated[str, Form(max_length=10)] = "",
    query: Annotated[str, Form(max_length=4000)] = "",
) -> RedirectResponse:
    """Save the list's current query (``query``: its URL query) under ``name``."""
    from urllib.parse import parse_qs

    params = parse_qs(query)
    raw = {
        key: (
            params.get(key, [])
            if key in ("stage", "grade")
            else next(iter(params.get(key, [])), None)
        )
        for key in QUERY_FIELDS
        if key != "offset"
    }
    back = "/leads?" + query
    try:
        made = filter_service.create_saved_filter(
            ctx, {"name": name, "query": raw, "shared": bool(shared)}, actor=user.principal
        )
    except (Conflict, ValidationFailed, Forbidden) as exc:
        detail = exc.detail
        if isinstance(exc, ValidationFailed) and exc.problems:
            detail = "; ".join(f"{p.loc}: {p.message}" for p in exc.problems)
        return redirect(request, back, f"Not saved: {detail}", "error")
    except ValueError as exc:  # a name pydantic refused (empty)
        return redirect(request, back, f"Not saved: {exc}", "error")
    return redirect(request, f"/leads?filter={made.id}", f"Saved the filter “{made.name}”.")


@router.post("/leads/filters/{filter_id}/delete", response_model=None)
def delete_filter(
    request: Request, ctx: Ctx, user: FormUser, filter_id: FilterId
) -> RedirectResponse:
    try:
        filter_service.delete_saved_filter(ctx, filter_id, actor=user.principal)
    except (Forbidden, NotFound) as exc:  # NotFound: deleted already (a second click)
        return redirect(request, "/leads", f"Not deleted: {exc.detail}", "error")
    return redirect(request, "/leads", "Saved filter deleted.")


@router.post("/leads/import", response_model=None)
async def upload(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    file: Annotated[UploadFile, File()],
    column_map: Annotated[str, Form(max_length=10_000)] = "",
    system: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Run the CLI's lead import on the uploaded CSV and show its report; ``column_map``
    holds the CLI's ``--map`` pairs one per line, ``system`` its ``--system``."""
    if not _may(user.principal, Action.CAPTURE_LEAD):
        raise Forbidden("your role may not import leads")
    try:
        mapping = parse_column_map(line for line in column_map.splitlines() if line.strip())
    except ValueError as exc:
        return redirect(request, "/leads", f"Not imported: the column map takes {exc}", "error")
    data = await file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        return redirect(
            request,
            "/leads",
            "Not imported: the file is larger than 20 MB; use `baton import leads` on the server.",
            "error",
        )
    if not data.strip():
        return redirect(request, "/leads", "Not imported: the file is empty.", "error")

    def run() -> tuple[Any, str]:
        with tempfile.TemporaryDirectory(prefix="baton-upload-") as folder:
            path = FilePath(folder) / "leads.csv"
            path.write_bytes(data)
            report = import_leads(
                ctx,
                path,
                actor=user.principal,
                column_map=mapping,
                external_system=system.strip() or None,
            )
        out = io.StringIO()
        if report.errors:
            write_lines_to_mend(report, out)
        return report, out.getvalue()

    try:
        report, rejected = await run_in_threadpool(run)
    except ImportFileError as exc:
        return redirect(request, "/leads", f"Not imported: {exc}", "error")
    except ValidationFailed as exc:
        detail = "; ".join(f"{p.loc}: {p.message}" for p in exc.problems) or exc.detail
        return redirect(request, "/leads", f"Not imported: {detail}", "error")
    return render(
        request,
        "leads/import.html",
        {"report": report, "rejected": rejected, "filename": file.filename or "leads.csv"},
    )


@router.post("/leads/import/rejected.csv", response_model=None)
def rejected_lines(
    request: Request,
    user: FormUser,
    lines: Annotated[str, Form(max_length=MAX_UPLOAD)] = "",
) -> Response:
    """The rejected lines of the import just shown, as a file to mend and upload again
    (written by :func:`write_lines_to_mend`, formulas guarded, and sent back as is)."""
    return Response(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="baton-import-rejected.csv"'},
    )


@router.get("/leads/{lead_id}", response_model=None)
def lead_page(request: Request, ctx: Ctx, user: PageUser, lead_id: LeadId) -> HTMLResponse:
    actor = user.principal
    lead = get_lead(ctx, lead_id, actor=actor)
    try:
        score = lead_score(ctx, lead_id, actor=actor)
    except NotFound:  # no contract active yet
        score = None
    timeline = lead_timeline(ctx, lead_id, actor=actor)
    handoffs = (
        handoff_service.list_handoffs(ctx, lead_id=lead_id, actor=actor)
        if _may(actor, Action.READ_HANDOFFS)
        else []
    )
    hits = sorted(score.hits, key=lambda hit: -abs(hit.points)) if score else []
    return render(
        request,
        "leads/lead.html",
        {
            "lead": lead,
            "score": score,
            "hits": hits,
            "history": list(stage_history(ctx, lead_id, actor=actor)),
            "handoffs": handoffs,
            "timeline": list(reversed(timeline)),
            "notes": [item for item in reversed(timeline) if item.kind == "note"],
            "may_annotate": _may(actor, Action.ANNOTATE_LEAD),
        },
    )


@router.post("/leads/{lead_id}/notes", response_model=None)
def add_note(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    lead_id: LeadId,
    body: Annotated[str, Form(max_length=5000)] = "",
) -> RedirectResponse:
    back = f"/leads/{lead_id}#notes"
    try:
        note_service.add_note(ctx, lead_id, body, actor=user.principal)
    except ValidationFailed as exc:
        return redirect(request, back, f"Note not added: {exc.detail}", "error")
    return redirect(request, back, "Note added.")


@router.post("/leads/{lead_id}/tags", response_model=None)
def add_tag(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    lead_id: LeadId,
    tag: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    back = f"/leads/{lead_id}#tags"
    try:
        note_service.add_tag(ctx, lead_id, tag, actor=user.principal)
    except ValidationFailed as exc:
        return redirect(request, back, f"Tag not added: {exc.detail}", "error")
    return redirect(request, back, f"Tagged “{tag.strip().lower()}”.")


@router.post("/leads/{lead_id}/tags/remove", response_model=None)
def remove_tag(
    request: Request,
    ctx: Ctx,
    user: FormUser,
    lead_id: LeadId,
    tag: Annotated[str, Form(max_length=200)] = "",
) -> RedirectResponse:
    back = f"/leads/{lead_id}#tags"
    try:
        note_service.remove_tag(ctx, lead_id, tag, actor=user.principal)
    except ValidationFailed as exc:
        return redirect(request, back, f"Tag not removed: {exc.detail}", "error")
    return redirect(request, back, f"Removed the tag “{tag}”.")
