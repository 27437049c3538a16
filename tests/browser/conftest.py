"""Browser tests: real Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright,
against a live server on a small SQLite world (:mod:`tests.web_world`).

One browser and one server for the whole run (session fixtures); each test gets fresh
pages. Fixtures:

* ``world`` and ``web_ctx``: the world's ids and emails, and the server's service
  context (make a handoff while a page is open: ``hand_raise(web_ctx)``);
* ``base_url``: the live server;
* ``page_as(role, viewport=(375, 812))``: a new browser context signed in (through the
  sign-in page) as the world's user of ``role`` (``admin``, ``marketing``,
  ``sales_manager``, ``rep``, ``other_rep``), at its home page; ``page_as(None)``:
  nobody signed in;
* ``axe_check(page)``: runs axe-core in the page and fails on serious or critical
  violations;
* ``screenshot(page, name)``: a full-page PNG in ``tests/browser/screenshots/``.

Chromium runs with ``--no-sandbox --disable-background-networking
--disable-component-update --disable-sync --no-first-run``: it makes no connection of
its own. The tests are skipped (with the reason) only when Chromium cannot start.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.live_server import live_server
from tests.web_world import PASSWORD, World, build_world

from baton.api.app import create_app
from baton.config import Settings
from baton.domain.clock import ManualClock
from baton.services.context import Context, open_context

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
"""The server's clock: a Monday, 09:00 in New York, 14:00 in London."""
PHONE = (375, 812)
DESKTOP = (1280, 900)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        pytest.skip(f"playwright is not installed ({exc}); run ./run test")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (./run test does)")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        except Exception as exc:  # the browser itself cannot start here
            pytest.skip(f"Chromium at {CHROMIUM} cannot start: {str(exc)[:300]}")
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def web_ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Context]:
    path = tmp_path_factory.mktemp("web") / "baton.db"
    context = open_context(
        Settings(database_url=f"sqlite:///{path}", env="development"),
        clock=ManualClock(current=NOW),
    )
    try:
        yield context
    finally:
        context.engine.dispose()


@pytest.fixture(scope="session")
def world(web_ctx: Context) -> World:
    return build_world(web_ctx)


@pytest.fixture(scope="session")
def base_url(web_ctx: Context, world: World) -> Iterator[str]:
    with live_server(create_app(web_ctx)) as url:
        yield url


PageAs = Callable[..., Any]


@pytest.fixture
def page_as(browser: Any, base_url: str, world: World) -> Iterator[PageAs]:
    """Open a signed-in page for a role; every context opened is closed at the end."""
    contexts: list[Any] = []

    def _open(role: str | None, viewport: tuple[int, int] = DESKTOP) -> Any:
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, base_url=base_url
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        if role is None:
            return page
        page.goto("/login")
        page.get_by_label("Email").fill(world.users[role])
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()
        assert "/login" not in page.url, f"{role} could not sign in: {page.content()[:500]}"
        return page

    yield _open
    for context in contexts:
        context.close()


@pytest.fixture
def axe_check() -> Callable[[Any], None]:
    """Fail on axe-core's serious and critical violations in the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()

    def _check(page: Any) -> None:
        results = axe.run(page)
        bad = [
            v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")
        ]
        details = [
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(n["target"]) for n in v["nodes"][:3])
            for v in bad
        ]
        assert not bad, f"accessibility violations on {page.url}:\n" + "\n".join(details)

    return _check


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    def _shoot(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return _shoot
