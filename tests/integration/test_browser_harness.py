"""The browser harness (tests/support/browser.py) against a real ``weir orchestrator``.

Plain ``def`` tests, as every browser test is: Playwright's sync API runs its own event loop.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from tests.integration.cluster import Cluster
from tests.support.browser import shoot

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n"


def test_chromium_shows_the_orchestrators_openapi_document(
    cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator()

    response = page.goto(f"{cluster.http_url}/openapi.json")

    assert response is not None and response.status == 200
    document = json.loads(page.locator("pre").first.inner_text())
    assert document["info"]["title"] == "weir orchestrator"
    assert "/healthz" in document["paths"]
    # the page runs JavaScript, which reaches the orchestrator too
    assert page.evaluate("async () => (await fetch('/healthz')).status") == 200
    shot = shoot(page, "harness-openapi")
    assert shot.stat().st_size > len(PNG) and shot.read_bytes().startswith(PNG)
    assert page_errors == []


def test_page_errors_has_console_errors_exceptions_and_requests_off_this_machine(
    page: Page, page_errors: list[str]
) -> None:
    page.set_content(
        "<h1>broken</h1>"
        "<script>console.error('said so'); console.log('fine')</script>"
        "<script>throw new Error('thrown')</script>"
        '<img src="http://example.invalid/away.png">'
    )

    expect(page.get_by_role("heading")).to_have_text("broken")
    page.wait_for_function("() => document.images[0].complete")
    assert any(e.startswith("console: said so") for e in page_errors), page_errors
    assert "pageerror: thrown" in page_errors
    assert "blocked: http://example.invalid/away.png is not on this machine" in page_errors
    assert not any("fine" in e for e in page_errors)
