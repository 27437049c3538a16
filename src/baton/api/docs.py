"""The interactive API docs (``/docs``, Swagger UI; ``/redoc``, ReDoc), served offline.

FastAPI's own pages load their JavaScript, CSS and icon from a CDN, so on an
air-gapped install ``/docs`` is a blank page. Here the same pages are built with
FastAPI's ``get_swagger_ui_html``/``get_redoc_html`` but point at files Baton serves
itself, under :data:`ASSETS_URL`, from the installed ``fastapi-offline`` wheel (MIT;
it ships Swagger UI 5 and ReDoc 2 under their own licences, Apache-2.0 and MIT). We
take only its static files, nothing is copied into this repository. ``swagger-ui-bundle``
was the other candidate, but its latest wheel carries Swagger UI 4.15, which cannot
render the OpenAPI 3.1 document FastAPI publishes.

Like ``/openapi.json``, the pages and their assets need no credentials (they hold no
data: everything they show comes from ``/openapi.json``, and every call made from
them goes through the access rules like any other, with the credentials given to
the **Authorize** button).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
    swagger_ui_default_parameters,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")
"""The installed package and its folder that hold ``swagger-ui-bundle.js``,
``swagger-ui.css``, ``redoc.standalone.js`` and ``favicon.png``."""

SWAGGER_UI_PARAMETERS = {
    **swagger_ui_default_parameters,
    # Swagger UI would otherwise send the document's URL to validator.swagger.io for a
    # badge: a request to the outside world on every page view.
    "validatorUrl": None,
}


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets (build ``app`` with
    ``docs_url=None, redoc_url=None`` so FastAPI does not add its CDN pages)."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @app.get(redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
