"""/n/...: the signed links of nurture email (open pixel, click redirect, unsubscribe).

No login: the signed token in the address is the credential (see
:mod:`baton.services.nurture_links`). A token Baton did not make, a damaged one, or a
click to a URL that is not in that email: the 404 page, never a redirect elsewhere and
never a 5xx. Kept out of the OpenAPI document (these are addresses in emails, not API
operations; documented in the README's "Nurture links").

* ``GET /n/o/{token}``: a transparent 1×1 GIF; records ``email_open``.
* ``GET /n/c/{token}``: 302 to the email's URL; records ``email_click``.
* ``GET /n/u/{token}``: the unsubscribe page, a confirm button (no script).
* ``POST /n/u/{token}`` with ``List-Unsubscribe=One-Click`` (RFC 8058, form-encoded or
  multipart): unsubscribed at once, 200 with a short page, no redirect.

``HEAD`` answers like ``GET`` and records nothing (mail scanners probe with it)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from baton.api.deps import Ctx
from baton.domain.errors import NotFound
from baton.services import nurture_links as links

router = APIRouter(prefix="/n", include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer"}


@router.api_route("/o/{token}", methods=["GET", "HEAD"])
def open_pixel(token: str, request: Request, ctx: Ctx) -> Response:
    if request.method == "HEAD":
        links.open_target(ctx, token)
    else:
        links.record_open(ctx, token)
    return Response(links.PIXEL_GIF, media_type="image/gif", headers=NO_STORE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"])
def click(token: str, request: Request, ctx: Ctx) -> Response:
    if request.method == "HEAD":
        _, url = links.click_target(ctx, token)
    else:
        url = links.follow_click(ctx, token)
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


def _page(request: Request, view: links.UnsubscribeView, *, done: bool) -> Response:
    from baton.web.render import render

    return render(
        request,
        "nurture/unsubscribe.html",
        {"address": view.address, "done": done, "action": request.url.path},
        headers=NO_STORE,
    )


@router.get("/u/{token}")
def unsubscribe_page(token: str, request: Request, ctx: Ctx) -> Response:
    view = links.unsubscribe_view(ctx, token)
    return _page(request, view, done=view.unsubscribed)


@router.post("/u/{token}")
async def unsubscribe_one_click(token: str, request: Request, ctx: Ctx) -> Response:
    from fastapi.concurrency import run_in_threadpool

    from baton.web import error_page

    if links.read_unsubscribe_token(ctx.settings, token) is None:
        raise NotFound(links.NOT_A_LINK)
    try:
        form = await request.form(max_files=0, max_fields=20)
    except Exception:  # an unreadable body is a bad request, never a 5xx
        form = None
    name, value = links.ONE_CLICK
    if form is None or form.get(name) != value:
        return error_page(
            request,
            400,
            "Not unsubscribed",
            "This address unsubscribes with the form field List-Unsubscribe=One-Click; "
            "open the link in a browser and press the button.",
        )
    source = "page" if form.get("from") == "page" else "one-click"
    view = await run_in_threadpool(links.unsubscribe, ctx, token, source=source)
    return _page(request, view, done=True)
