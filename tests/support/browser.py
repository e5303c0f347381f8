"""Browser tests of the web UI: Playwright's sync API driving Debian's Chromium.

The browser is ``/usr/bin/chromium`` (Debian's package, which ``scripts/test`` installs), never
one that ``playwright install`` downloads. The fixtures, which the integration tests' conftest
makes available:

* ``chromium`` (module scope): a headless Chromium ``Browser`` with a fresh profile (Playwright
  gives each launch a new temporary ``--user-data-dir`` and removes it on close). When
  ``/usr/bin/chromium`` is missing the test fails, it is never skipped.
* ``page`` (function scope): a new ``Page`` in a new browser context (cookies and storage of its
  own), closed after the test; ``page_errors`` (function scope) is the list of that page's
  console errors (a failed request of the page is one) and uncaught exceptions, in order.
  The context only reaches 127.0.0.1, localhost and [::1]: a request anywhere else (a CDN, the
  Swagger page's scripts) is aborted before it leaves and listed in ``page_errors`` too.

``shoot(page, "name")`` saves a full-page PNG as ``name.png`` in ``$WEIR_TEST_ARTIFACTS`` (by
default ``.artifacts/ui/`` in the repository) and returns its path. A test::

    @pytest.mark.integration
    def test_the_list_shows_an_execution(cluster: Cluster, page: Page, page_errors: list[str]):
        cluster.start_engine("e1")
        cluster.start_orchestrator()
        page.goto(f"{cluster.http_url}/ui/")
        expect(page.get_by_role("heading", name="Executions")).to_be_visible()
        shoot(page, "executions")
        assert page_errors == []

Browser tests are plain ``def test_...`` functions, and a module that has them has no async
tests or async fixtures: between two of its calls Playwright's sync API leaves its own event
loop marked as running in the test's thread (until the module's browser stops), so
``asyncio.run`` and pytest-asyncio cannot run there. Use ``tests.support.poll.wait_for`` and
synchronous clients (``httpx.Client``, the ``weir`` CLI) in them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, sync_playwright

from tests.support.chromium import ARGS, CHROMIUM

ROOT = Path(__file__).parents[2]
TIMEOUT_MS = 10_000  # for every wait of a page (Playwright's default, 30 s, is half a test's)
LAUNCH_TIMEOUT_MS = 30_000
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def artifacts() -> Path:
    """Where screenshots go: ``$WEIR_TEST_ARTIFACTS``, by default ``<repo>/.artifacts/ui``."""
    return Path(os.environ.get("WEIR_TEST_ARTIFACTS") or ROOT / ".artifacts" / "ui")


def shoot(page: Page, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``<artifacts>/<name>.png``; its path."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"a screenshot's name is a plain file name, not {name!r}")
    path = artifacts() / (name if name.endswith(".png") else f"{name}.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)
    return path


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Headless Chromium for the tests of one module, stopped after its last test."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package, which "
            "scripts/test installs (or run 'apt-get install chromium' as root); "
            "'playwright install' is not used",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page_errors() -> list[str]:
    """The ``page`` fixture's console errors and uncaught exceptions, as they happen."""
    return []


@pytest.fixture
def page(chromium: Browser, page_errors: list[str]) -> Iterator[Page]:
    """A new page in a new browser context; both are closed after the test."""
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)

    def loopback_only(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            page_errors.append(f"blocked: {url} is not on this machine")
            route.abort("blockedbyclient")

    try:
        context.route("**/*", loopback_only)
        new = context.new_page()

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                where = message.location
                page_errors.append(
                    f"console: {message.text} ({where['url']}:{where['lineNumber']})"
                )

        new.on("console", console)
        new.on("pageerror", lambda error: page_errors.append(f"pageerror: {error}"))
        yield new
    finally:
        context.close()
