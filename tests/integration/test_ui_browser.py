"""The web UI in a real headless Chromium (Debian's, driven by Playwright) against a real
``weir orchestrator`` and ``weir engine`` on 127.0.0.1.

The graph appears and recolours live while an execution runs; a failed execution shows its red
path; cancel works; the start form validates by field; a 1,000-node execution renders, pans,
zooms and expands its fan-out; the event stream shows new events; token sign-in works. Every
page is kept as a screenshot in ``.artifacts/ui`` (``tests/support/browser.py``).

Plain ``def`` tests (Playwright's sync API runs its own event loop): the clients here are
``httpx.Client`` and the helpers poll with ``wait_for``.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.integration.cluster import Cluster
from tests.support.browser import shoot

pytestmark = pytest.mark.integration

TOKEN = "browser-s3cret"
STEPS = """
name: steps
version: 1.0.0
description: Three steps, the middle one slow.
inputs:
  pause: {type: integer, default: 2, description: A number to carry.}
  label: {type: string, default: hello}
nodes:
  - id: prepare
    lua: return {label = inputs.label, pause = inputs.pause}
  - id: slow
    depends_on: [prepare]
    sleep: 3s
  - id: report
    depends_on: [slow]
    lua: return {done = true}
"""
BROKEN = """
name: broken
version: 1.0.0
nodes:
  - id: fetch
    lua: return {rows = 3}
  - id: explode
    depends_on: [fetch]
    lua: error("the <b>parser</b> choked")
  - id: publish
    depends_on: [explode]
    lua: return {}
  - id: alert
    depends_on: [explode]
    trigger_rule: one_failed
    lua: return {paged = true}
"""
SLEEPY = """
name: sleepy
version: 1.0.0
nodes:
  - id: nap
    sleep: 60s
"""


def _wide(width: int) -> str:
    nodes: list[dict[str, Any]] = [{"id": "start", "noop": {}}]
    members = [f"n{i:04d}" for i in range(width)]
    nodes += [{"id": m, "depends_on": ["start"], "noop": {}} for m in members]
    nodes.append({"id": "finish", "depends_on": members, "noop": {}})
    return json.dumps({"name": "wide", "version": "1.0.0", "nodes": nodes})


@pytest.fixture
def ui(cluster: Cluster) -> Iterator[httpx.Client]:
    cluster.start_engine("e1", capacity=20)
    cluster.start_orchestrator()
    with httpx.Client(base_url=cluster.http_url, timeout=60) as client:
        for source in (STEPS, BROKEN, SLEEPY):
            answer = client.post(
                "/api/v1/workflows", content=source, headers={"Content-Type": "application/yaml"}
            )
            assert answer.status_code == 201, answer.text
        yield client


def _start(client: httpx.Client, workflow: str, wait: bool = False, **inputs: Any) -> str:
    url = "/api/v1/executions" + ("?wait=true&timeout=60" if wait else "")
    answer = client.post(url, json={"workflow": workflow, "inputs": inputs})
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["id"])


def _node(page: Page, node: str) -> Any:
    return page.locator(f'#graph [data-node="{node}"]')


def test_the_graph_recolours_live_while_an_execution_runs(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    execution = _start(ui, "steps")
    page.goto(f"{cluster.http_url}/ui/executions/{execution}")
    expect(page.locator("#graph[data-ready]")).to_be_visible()
    expect(_node(page, "slow")).to_have_attribute("data-status", "running")
    expect(_node(page, "prepare")).to_have_attribute("data-status", "completed")
    expect(_node(page, "report")).to_have_attribute("data-status", "pending")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    shoot(page, "execution-running")
    # nothing reloads the page: the stream and /status recolour it
    expect(_node(page, "slow")).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(_node(page, "report")).to_have_attribute("data-status", "completed")
    expect(_node(page, "report")).to_contain_text("completed")  # a word, not only a colour
    expect(page.locator("#execution-header .status.big")).to_contain_text("completed")
    expect(page.locator("#execution-events")).to_contain_text("execution.completed")
    expect(page.locator('#timeline [data-node="slow"]').first).to_be_visible()
    taken = page.locator('#graph .edge.taken[data-from="slow"][data-to="report"]')
    expect(taken).to_have_count(1)

    _node(page, "slow").click()
    panel = page.locator("#node-panel")
    expect(panel).to_contain_text("sleep")
    _node(page, "prepare").focus()
    page.keyboard.press("Enter")
    expect(panel).to_contain_text('"label": "hello"')
    shoot(page, "execution")
    assert page_errors == []


def test_a_failed_execution_shows_its_red_path(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    execution = _start(ui, "broken", wait=True)
    page.goto(f"{cluster.http_url}/ui/executions/{execution}")
    expect(page.locator("#graph[data-ready]")).to_be_visible()
    expect(_node(page, "explode")).to_have_attribute("data-status", "failed")
    expect(_node(page, "publish")).to_have_attribute("data-status", "skipped")
    expect(_node(page, "alert")).to_have_attribute("data-status", "completed")
    red = page.locator('#graph .edge.failed-path[data-to="explode"]')
    expect(red).to_have_count(1)
    assert red.evaluate("e => getComputedStyle(e).stroke") == "rgb(192, 38, 45)"
    green = page.locator('#graph .edge.taken[data-from="explode"][data-to="alert"]')
    expect(green).to_have_count(1)
    assert green.evaluate("e => getComputedStyle(e).stroke") == "rgb(27, 127, 59)"
    _node(page, "explode").click()
    error = page.locator("#node-panel .error")
    expect(error).to_contain_text("the <b>parser</b> choked")
    expect(error.locator("b")).to_have_count(0)  # shown as text, not parsed
    shoot(page, "execution-failed")
    assert page_errors == []


def test_cancel_from_the_page(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    execution = _start(ui, "sleepy")
    page.goto(f"{cluster.http_url}/ui/executions/{execution}")
    expect(_node(page, "nap")).to_have_attribute("data-status", "running")
    page.on("dialog", lambda dialog: dialog.accept())
    page.fill("#cancel-reason", "not needed")
    page.click("#cancel")
    expect(page.locator("#execution-header .status.big")).to_contain_text(
        "cancelled", timeout=15_000
    )
    expect(_node(page, "nap")).to_have_attribute("data-status", "cancelled")
    assert ui.get(f"/api/v1/executions/{execution}").json()["status"] == "cancelled"
    expect(page.locator("#cancel")).to_have_count(0)
    assert page_errors == []


def test_the_start_form_validates_and_starts(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    page.goto(f"{cluster.http_url}/ui/workflows/steps/versions/1.0.0")
    pause = page.locator('#start-form [data-input="pause"] input')
    expect(pause).to_have_value("2")
    shoot(page, "workflow-version")
    page.evaluate("document.getElementById('start-form').setAttribute('novalidate', '')")
    pause.fill("2.5")  # the browser's own check is off: the server's answers by field
    page.click("#start")
    error = page.locator('#start-form [data-input="pause"] .field-error')
    expect(error).to_be_visible()
    expect(pause).to_have_attribute("aria-invalid", "true")
    expect(page.locator('#start-form [data-input="label"] input')).to_have_value("hello")
    shoot(page, "start-form-error")
    page.locator('#start-form [data-input="pause"] input').fill("0")
    page.click("#start")
    page.wait_for_url("**/ui/executions/*")
    expect(page.locator("#execution-header .status.big")).to_contain_text(
        "completed", timeout=15_000
    )
    assert page_errors == [] or all("422" in e for e in page_errors), page_errors


def test_a_thousand_node_execution_renders_pans_zooms_and_expands(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    answer = ui.post(
        "/api/v1/workflows", content=_wide(998), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 201, answer.text
    execution = _start(ui, "wide", wait=True)
    page.goto(f"{cluster.http_url}/ui/executions/{execution}")
    expect(page.locator("#graph[data-ready]")).to_be_visible()
    group = page.locator("#graph .group.collapsed")
    expect(group).to_have_count(1)
    expect(group).to_have_attribute("data-status", "completed")
    expect(group).to_contain_text("998 completed")
    box = page.locator("#graph svg")
    before = box.get_attribute("viewBox")
    page.locator("#graph").hover()
    page.mouse.wheel(0, -400)
    zoomed = box.get_attribute("viewBox")
    assert zoomed != before
    area = page.locator("#graph").bounding_box()
    assert area is not None
    page.mouse.move(area["x"] + 40, area["y"] + 40)
    page.mouse.down()
    page.mouse.move(area["x"] + 140, area["y"] + 90, steps=4)
    page.mouse.up()
    assert box.get_attribute("viewBox") != zoomed
    shoot(page, "execution-1000-collapsed")

    group.click()
    expect(page.locator("#graph [data-node]")).to_have_count(1000)
    expect(page.locator('#graph [data-node="n0500"]')).to_have_attribute("data-status", "completed")
    page.locator("#graph").focus()
    page.keyboard.press("0")  # fit the whole graph
    shoot(page, "execution-1000-expanded")
    assert page_errors == []


def test_the_event_stream_shows_new_events_and_the_pages_render(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    page.goto(f"{cluster.http_url}/ui/events?type=execution.")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    execution = _start(ui, "broken", wait=True)
    row = page.locator("#event-stream tbody tr", has_text="execution.completed")
    expect(row.first).to_be_visible()
    expect(row.first).to_contain_text(execution)
    shoot(page, "events")
    for name, path in [
        ("overview", "/ui"),
        ("workflows", "/ui/workflows"),
        ("executions", "/ui/executions"),
        ("workflow", "/ui/workflows/steps"),
    ]:
        page.goto(f"{cluster.http_url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        shoot(page, name)
    page.goto(f"{cluster.http_url}/ui/executions")
    page.select_option("select[name=status]", "completed")
    expect(page.locator("#executions tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/ui/executions\?.*status=completed"))
    assert page_errors == []


def test_sign_in_with_the_token(cluster: Cluster, page: Page, page_errors: list[str]) -> None:
    cluster.start_engine("e1")
    cluster.start_orchestrator(api_token=TOKEN)
    page.goto(f"{cluster.http_url}/ui/executions")
    expect(page).to_have_url(f"{cluster.http_url}/ui/login?next=%2Fui%2Fexecutions")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    expect(page.locator("#token-error")).to_contain_text("not the API token")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{cluster.http_url}/ui/executions")
    expect(page.locator("main h1")).to_have_text("Executions")
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "weir_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    shoot(page, "login-done")
    page.click("text=Sign out")
    expect(page).to_have_url(f"{cluster.http_url}/ui/login")
    assert all("401" in e for e in page_errors), page_errors


def test_the_event_page_resumes_after_the_orchestrator_is_killed(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    before = _start(ui, "broken", wait=True)
    page.goto(f"{cluster.http_url}/ui/events?type=execution.")
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    expect(page.locator("#event-stream tbody tr", has_text=before).first).to_be_visible()
    assert cluster.orchestrator is not None
    cluster.orchestrator.signal(signal.SIGKILL)
    cluster.orchestrator.wait(10)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "reconnecting")
    cluster.start_orchestrator()  # same port, same store
    after = _start(ui, "broken", wait=True)
    rows = page.locator("#event-stream tbody tr", has_text=after)
    expect(rows.filter(has_text="execution.completed")).to_have_count(1, timeout=15_000)
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
    sequences = [
        int(s)
        for s in page.locator("#event-stream tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.sequence)"
        )
    ]
    assert len(sequences) == len(set(sequences)), "an event shown twice"
    # the only errors are the stream's, cut by the kill and refused until the restart
    assert all("/ui/stream?" in e for e in page_errors), page_errors


UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')].filter(el =>
    !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !(el.textContent || '').trim()).map(el => el.outerHTML.slice(0, 120))"""


def test_every_page_meets_the_accessibility_basics(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    execution = _start(ui, "broken", wait=True)
    for path in [
        "/ui",
        "/ui/workflows",
        "/ui/workflows/steps",
        "/ui/workflows/steps/versions/1.0.0",
        "/ui/executions",
        f"/ui/executions/{execution}",
        "/ui/events",
    ]:
        page.goto(f"{cluster.http_url}{path}")
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("h1").count() == 1, path
        assert page.evaluate(UNLABELLED) == [], path  # every control has a name
        assert page.locator("img:not([alt])").count() == 0, path
        page.keyboard.press("Tab")  # the first stop is the skip link, which lands on main
        expect(page.locator(".skip")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#main")).to_be_focused()
    # the graph from the keyboard alone: Tab reaches a node, Enter opens it
    page.goto(f"{cluster.http_url}/ui/executions/{execution}")
    expect(page.locator("#graph[data-ready]")).to_be_visible()
    page.locator("#graph").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.dataset.node")
    assert focused == "fetch"  # nodes in definition order
    page.keyboard.press("Enter")
    expect(page.locator("#node-panel h3")).to_contain_text("fetch")
    # a status is a word too, never a colour alone
    for element in page.locator("#graph [data-node]").all():
        status = element.get_attribute("data-status")
        assert status is not None and status in (element.text_content() or ""), status
    assert page_errors == []


def test_the_list_says_when_it_changed_and_redraws_on_request(
    ui: httpx.Client, cluster: Cluster, page: Page, page_errors: list[str]
) -> None:
    first = _start(ui, "broken", wait=True)
    page.goto(f"{cluster.http_url}/ui/executions?workflow=broken")
    expect(page.locator(f'#executions tr[data-execution="{first}"]')).to_be_visible()
    banner = page.locator("#list-changed")
    expect(banner).to_be_hidden()
    second = _start(ui, "broken", wait=True)
    _start(ui, "steps")  # another workflow: not this list's business
    expect(banner).to_be_visible()
    expect(page.locator(f'#executions tr[data-execution="{second}"]')).to_have_count(0)
    banner.locator("button").click()
    expect(page.locator(f'#executions tr[data-execution="{second}"]')).to_be_visible()
    expect(page.locator("#executions tbody tr")).to_have_count(2)
    expect(banner).to_be_hidden()
    assert page_errors == []
