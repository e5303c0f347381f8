"""The workflow pages of the UI over HTTP, with the real app on a real orchestrator core.

The core runs on a memory store with no engine, so a started execution stays queued: enough to
see the start form redirect to it. Covers every page's statuses, the escaping of user data
(descriptions, input names and defaults, node args, trigger inputs), the start form's typed
fields and errors by field, the deprecate action, the CSRF rules and signing in.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engine.definition.parser import loads
from orchestrator.api.rest.app import create_app
from orchestrator.ui.workflows import read_form
from orchestrator.wiring import Orchestrator
from tests.support.ui import memory_orchestrator

EVIL = "<script>alert(1)</script>\"'&"
RAW = "<script>alert(1)"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ODD_INPUT = 'x<b>"'
"""An input name is any text: it must not break out of an attribute either."""


def _greet(version: str, **changes: Any) -> str:
    doc: dict[str, Any] = {
        "name": "greet",
        "version": version,
        "description": EVIL,
        "inputs": {
            "name": {"type": "string", "description": EVIL},
            "count": {"type": "integer", "default": 3},
            "ratio": {"type": "number", "default": 0.5},
            "loud": {"type": "boolean", "default": False},
            "tags": {"type": "array", "default": [EVIL]},
            "title": {"type": "string", "default": EVIL},
            ODD_INPUT: {"type": "any", "default": None},
        },
        "nodes": [
            {"id": "hello", "lua": "return {n = inputs.count}", "args": {"x": EVIL}},
            {"id": "after", "noop": {}, "depends_on": ["hello"], "description": EVIL},
        ],
        "triggers": [{"name": "nightly", "cron": "@daily", "inputs": {"name": EVIL}}],
    }
    doc.update(changes)
    return json.dumps(doc)


GREET_1 = _greet("1.0.0")
GREET_2 = _greet(
    "1.1.0",
    nodes=[
        {"id": "hello", "lua": "return {n = inputs.count + 1}", "args": {"x": EVIL}},
        {"id": "later", "noop": {}, "depends_on": ["hello"]},
    ],
)
CALLER = json.dumps(
    {
        "name": "caller",
        "version": "2.0.0",
        "nodes": [{"id": "call", "workflow": {"name": "greet", "version": "^1.0"}}],
    }
)
PLAIN = json.dumps({"name": "plain", "version": "0.1.0", "nodes": [{"id": "only", "noop": {}}]})


@pytest.fixture
async def core() -> AsyncIterator[Orchestrator]:
    async with memory_orchestrator() as core:
        for source in (GREET_1, GREET_2, CALLER, PLAIN):
            await core.workflows.register(source)
        yield core


def _client(core: Orchestrator, api_token: str = "") -> httpx.AsyncClient:
    app = create_app(core.services, api_token=api_token)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.fixture
async def ui(core: Orchestrator) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(core) as client:
        yield client


async def _csrf(ui: httpx.AsyncClient) -> str:
    """Open a session (the first page sets its cookie) and read the page's CSRF token."""
    page = await ui.get("/ui/workflows")
    assert page.status_code == 200, page.text
    found = re.search(r'<body[^>]* data-csrf="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


START = "/ui/workflows/greet/versions/1.0.0/start"
HX = {"HX-Request": "true", "HX-Target": "start-area"}


def _field(html: str, name: str) -> str:
    """The ``<div class="field">`` of input ``name`` (name as it appears escaped)."""
    found = re.search(
        rf'<div class="field" data-input="{re.escape(name)}">(.*?)\n  </div>', html, re.S
    )
    assert found, f"no field {name!r} in {html}"
    return found.group(1)


def _control(field: str) -> str:
    """The field's ``<input>`` or ``<textarea>`` start tag."""
    found = re.search(r"<(?:input|textarea) [^>]*>", field)
    assert found, field
    return found.group(0)


# --- pages ----------------------------------------------------------------------------------------


async def test_the_list_shows_every_workflow_with_its_latest_version_and_deprecated_marks(
    core: Orchestrator, ui: httpx.AsyncClient
) -> None:
    await core.workflows.deprecate("greet", "1.0.0")
    page = await ui.get("/ui/workflows")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "weir_session" in page.cookies
    rows = re.findall(r'<tr data-workflow="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [name for name, _ in rows] == ["caller", "greet", "plain"]
    greet = dict(rows)["greet"]
    assert 'href="/ui/workflows/greet"' in greet
    assert 'href="/ui/workflows/greet/versions/1.1.0"' in greet
    assert "<td>2</td>" in greet and "⊘ 1 of 2" in greet and "1.0.0" in greet
    assert ESCAPED in greet
    assert "none" in dict(rows)["plain"] and "⊘" not in dict(rows)["plain"]


async def test_a_workflow_lists_its_versions_with_uses_and_used_by_linked(
    ui: httpx.AsyncClient,
) -> None:
    page = await ui.get("/ui/workflows/greet")
    assert page.status_code == 200
    versions = re.findall(r'<tr data-version="([^"]+)">(.*?)</tr>', page.text, re.S)
    assert [v for v, _ in versions] == ["1.1.0", "1.0.0"]
    for version, row in versions:
        assert f'href="/ui/workflows/greet/versions/{version}"' in row
        assert 'href="/ui/workflows/caller/versions/2.0.0"' in row  # ^1.0 admits both
        assert "✓ in use" in row
    assert '<select name="from"' in page.text and 'action="/ui/workflows/greet/diff"' in page.text
    assert '<option value="1.0.0" selected>' in page.text  # from: the one before the newest
    assert (
        'href="/ui/workflows/greet/diff?from=1.0.0&amp;to=1.1.0">changes since 1.0.0'
        in (versions[0][1])
    )

    caller = await ui.get("/ui/workflows/caller")
    assert 'href="/ui/workflows/greet"' in caller.text and "<code>^1.0</code>" in caller.text
    assert "nothing to compare" in caller.text


async def test_a_version_shows_its_source_graph_inputs_triggers_and_links(
    ui: httpx.AsyncClient,
) -> None:
    page = await ui.get("/ui/workflows/greet/versions/1.0.0")
    assert page.status_code == 200
    html = page.text
    source = re.search(r'<pre id="source">(.*?)</pre>', html, re.S)
    assert source and "&#34;name&#34;: &#34;greet&#34;" in source.group(1)
    graph = re.search(r'<div id="graph"[^>]*>', html)
    assert graph and 'data-graph-url="/ui/workflows/greet/versions/1.0.0/graph"' in graph.group(0)
    for node in ("hello", "after"):
        assert re.search(rf'data-node="{node}"[^>]*data-status="pending"', html), node
    graph_only = html[html.index('<div id="graph"') :]
    assert html.count("data-node=") == graph_only[: graph_only.index("</svg>")].count("data-node=")
    inputs = re.search(r'<table class="list" id="inputs">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert inputs and inputs.group(1).count("<tr>") == 7
    assert "<code>nightly</code>" in html and "@daily" in html
    assert 'href="/ui/executions?workflow=greet&amp;version=1.0.0"' in html
    assert 'id="deprecate"' in html and 'id="start-area"' in html


async def test_the_graph_fragment_answers_alone(ui: httpx.AsyncClient) -> None:
    part = await ui.get(
        "/ui/workflows/greet/versions/1.1.0/graph?expand_all=true", headers={"HX-Request": "true"}
    )
    assert part.status_code == 200
    assert "<html" not in part.text and 'id="graph"' in part.text
    assert 'data-expand-all="true"' in part.text and 'data-node="later"' in part.text


async def test_a_wide_fan_out_is_collapsed_and_expands_in_the_graph_fragment(
    core: Orchestrator, ui: httpx.AsyncClient
) -> None:
    fan = [{"id": f"leg{i:02}", "noop": {}, "depends_on": ["split"]} for i in range(30)]
    await core.workflows.register(
        json.dumps(
            {
                "name": "wide",
                "version": "1.0.0",
                "nodes": [{"id": "split", "noop": {}}, *fan],
            }
        )
    )
    page = await ui.get("/ui/workflows/wide/versions/1.0.0")
    assert page.status_code == 200
    assert 'data-group="group-leg00"' in page.text and 'data-node="leg05"' not in page.text
    assert 'hx-get="/ui/workflows/wide/versions/1.0.0/graph?expand_all=true"' in page.text
    part = await ui.get(
        "/ui/workflows/wide/versions/1.0.0/graph?expand=group-leg00",
        headers={"HX-Request": "true"},
    )
    assert part.status_code == 200 and 'data-node="leg05"' in part.text
    assert 'data-expand="group-leg00"' in part.text and "Collapse groups" in part.text


@pytest.mark.parametrize(
    "url",
    [
        "/ui/workflows/nope",
        "/ui/workflows/nope/versions/1.0.0",
        "/ui/workflows/greet/versions/9.9.9",
        "/ui/workflows/greet/versions/not-a-version",
        "/ui/workflows/greet/versions/9.9.9/graph",
        "/ui/workflows/nope/diff?from=1.0.0&to=1.1.0",
        "/ui/workflows/greet/diff?from=1.0.0&to=9.9.9",
    ],
)
async def test_an_unknown_workflow_or_version_is_a_404_page(
    ui: httpx.AsyncClient, url: str
) -> None:
    page = await ui.get(url)
    assert page.status_code == 404, page.text
    assert "<h1>404" in page.text and "Traceback" not in page.text


@pytest.mark.parametrize(
    "query", ["", "?from=1.0.0", "?to=1.1.0", "?from=&to=1.1.0", "?from=1.0.0&to=" + "9" * 300]
)
async def test_a_diff_without_two_versions_is_a_422_page(ui: httpx.AsyncClient, query: str) -> None:
    page = await ui.get(f"/ui/workflows/greet/diff{query}")
    assert page.status_code == 422, page.text
    assert "Invalid request" in page.text


async def test_the_diff_shows_changes_and_whether_a_running_execution_can_continue(
    ui: httpx.AsyncClient,
) -> None:
    page = await ui.get("/ui/workflows/greet/diff?from=1.0.0&to=1.1.0")
    assert page.status_code == 200
    html = page.text
    verdict = re.search(r'<section id="verdict"[^>]*>(.*?)</section>', html, re.S)
    assert verdict and 'data-can-continue="false"' in html
    assert "✗ No" in verdict.group(1) and "cannot continue" in verdict.group(1)
    assert "node after was removed" in verdict.group(1)
    assert "node later is new" in verdict.group(1)  # a note
    changes = dict(
        re.findall(r'<tr data-change="(\w+)"><td>[^<]*</td><td><code>(\w+)</code>', html)
    )
    assert "data-node" not in html  # only a graph's nodes carry it
    assert changes == {"added": "later", "removed": "after", "changed": "hello"}
    assert "<code>lua</code>" in html
    assert '<option value="1.1.0" selected>' in html

    same = await ui.get("/ui/workflows/greet/diff?from=1.1.0&to=1.1.0")
    assert 'data-can-continue="true"' in same.text and "✓ Yes" in same.text
    assert 'id="no-changes"' in same.text


@pytest.mark.parametrize(
    "url",
    [
        "/ui/workflows",
        "/ui/workflows/greet",
        "/ui/workflows/greet/versions/1.0.0",
        "/ui/workflows/greet/diff?from=1.0.0&to=1.1.0",
    ],
)
async def test_user_data_is_escaped_on_every_page(ui: httpx.AsyncClient, url: str) -> None:
    page = await ui.get(url)
    assert page.status_code == 200
    assert RAW not in page.text and "<b>" not in page.text
    assert ESCAPED in page.text or url.endswith("to=1.1.0")
    if "versions" in url:
        assert ESCAPED + "&#34;&#39;&amp;" in page.text  # the description, quotes and all
        assert 'data-input="x&lt;b&gt;&#34;"' in page.text


async def test_the_diff_page_escapes_what_the_diff_says(core: Orchestrator) -> None:
    await core.workflows.register(
        _greet(
            "1.2.0",
            inputs={"title": {"type": "string", "default": EVIL + "2"}},
            nodes=[{"id": "hello", "lua": "return {}"}],
            triggers=[],
        )
    )
    async with _client(core) as ui:
        page = await ui.get("/ui/workflows/greet/diff?from=1.1.0&to=1.2.0")
    assert page.status_code == 200
    assert "input title" in page.text and ESCAPED in page.text and RAW not in page.text


# --- the start form -------------------------------------------------------------------------------


async def test_the_start_form_has_a_typed_field_per_input_with_its_default(
    ui: httpx.AsyncClient,
) -> None:
    html = (await ui.get("/ui/workflows/greet/versions/1.0.0")).text
    form = re.search(r'<form id="start-form".*?</form>', html, re.S)
    assert form
    assert f'hx-post="{START}"' in form.group(0) and 'hx-target="#start-area"' in form.group(0)
    name = _field(html, "name")
    assert 'type="text"' in _control(name) and " required" in _control(name)
    assert "required</span></label>" in name and ESCAPED in name
    assert 'aria-describedby="input-0-help"' in _control(name)
    count = _control(_field(html, "count"))
    assert 'type="number"' in count and 'value="3"' in count and 'step="1"' in count
    assert " required" not in count
    ratio = _control(_field(html, "ratio"))
    assert 'type="number"' in ratio and 'value="0.5"' in ratio and 'step="any"' in ratio
    loud = _control(_field(html, "loud"))
    assert 'type="checkbox"' in loud and 'value="true"' in loud and "checked" not in loud
    tags = _field(html, "tags")
    assert "<textarea" in tags and ESCAPED in tags
    assert f'value="{ESCAPED}&#34;&#39;&amp;"' in _control(_field(html, "title"))
    odd = _control(_field(html, "x&lt;b&gt;&#34;"))
    assert 'name="input.x&lt;b&gt;&#34;"' in odd and "<textarea" in odd
    labels = re.findall(r'<label for="(input-\d+)">', form.group(0))
    assert labels == [f"input-{i}" for i in range(7)]


async def test_a_good_start_redirects_to_the_new_execution_with_typed_inputs(
    core: Orchestrator, ui: httpx.AsyncClient
) -> None:
    token = await _csrf(ui)
    form = {
        "csrf": token,
        "input.name": "Ada",
        "input.count": "7",
        "input.ratio": "2.5",
        "input.loud": "true",
        "input.tags": '["a", "b"]',
        "input.title": "",
        f"input.{ODD_INPUT}": "",
    }
    answer = await ui.post(START, data=form)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/ui/executions/")
    record = await core.executions.get(location.removeprefix("/ui/executions/"))
    assert record.name == "greet" and record.version == "1.0.0"
    assert record.inputs == {
        "name": "Ada",
        "count": 7,
        "ratio": 2.5,
        "loud": True,
        "tags": ["a", "b"],
        "title": "",
        ODD_INPUT: None,
    }

    by_htmx = await ui.post(START, data={"input.name": "Bo"}, headers={**HX, "X-CSRF-Token": token})
    assert by_htmx.status_code == 204 and by_htmx.headers["hx-redirect"].startswith(
        "/ui/executions/"
    )
    second = await core.executions.get(by_htmx.headers["hx-redirect"].rsplit("/", 1)[1])
    assert second.inputs["loud"] is False and second.inputs["count"] == 3
    assert second.inputs["tags"] == [EVIL]


async def test_a_bad_start_shows_each_error_beside_its_field_and_keeps_the_values(
    ui: httpx.AsyncClient,
) -> None:
    token = await _csrf(ui)
    form = {
        "input.name": "",
        "input.count": "seven",
        "input.ratio": "2.5",
        "input.loud": "true",
        "input.tags": "[1, 2",
        "input.title": EVIL,
    }
    answer = await ui.post(START, data=form, headers={**HX, "X-CSRF-Token": token})
    assert answer.status_code == 422, answer.text
    html = answer.text
    assert "<html" not in html and html.lstrip().startswith("<form")
    assert RAW not in html
    errors = {
        "name": ("input-0", "required input missing"),
        "count": ("input-1", "is not a whole number"),
        "tags": ("input-4", "is not JSON"),
    }
    for name, (ident, message) in errors.items():
        field = _field(html, name)
        control = _control(field)
        assert 'aria-invalid="true"' in control, name
        described = re.search(r'aria-describedby="([^"]*)"', control)
        assert described and f"{ident}-error" in described.group(1).split(), name
        assert re.search(rf'<p class="field-error" id="{ident}-error">[^<]*{message}', field), name
    assert 'value="seven"' in _control(_field(html, "count"))
    assert 'value="2.5"' in _control(_field(html, "ratio"))
    assert "checked" in _control(_field(html, "loud"))
    assert ">[1, 2</textarea>" in _field(html, "tags")
    assert f'value="{ESCAPED}&#34;&#39;&amp;"' in _control(_field(html, "title"))
    assert "aria-invalid" not in _field(html, "ratio")

    whole = await ui.post(START, data={**form, "csrf": token})
    assert whole.status_code == 422
    assert "<html" in whole.text and '<pre id="source">' in whole.text
    assert 'aria-invalid="true"' in _control(_field(whole.text, "count"))


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("tags", '{"a": 1}', "expected array, got object"),
        ("ratio", "1e400", "is not a finite number"),
        ("ratio", "abc", "is not a number"),
        ("count", "2.5", "is not a whole number"),
    ],
)
async def test_a_value_of_the_wrong_type_is_reported_beside_its_field(
    ui: httpx.AsyncClient, field: str, text: str, message: str
) -> None:
    token = await _csrf(ui)
    answer = await ui.post(
        START,
        data={"input.name": "Ada", f"input.{field}": text},
        headers={**HX, "X-CSRF-Token": token},
    )
    assert answer.status_code == 422
    assert message in _field(answer.text, field)
    assert 'class="error"' not in answer.text  # no form-level error: it is the field's


async def test_starting_a_deprecated_version_shows_the_services_error_on_the_form(
    core: Orchestrator, ui: httpx.AsyncClient
) -> None:
    await core.workflows.deprecate("greet", "1.0.0")
    token = await _csrf(ui)
    page = await ui.get("/ui/workflows/greet/versions/1.0.0")
    assert "⊘ deprecated" in page.text and 'id="undeprecate"' in page.text
    answer = await ui.post(START, data={"input.name": "Ada"}, headers={**HX, "X-CSRF-Token": token})
    assert answer.status_code == 409
    error = re.search(
        r'<div class="error" role="alert" id="start-error">(.*?)</div>', answer.text, re.S
    )
    assert error and "is deprecated" in error.group(1)
    assert 'aria-describedby="start-error"' in answer.text
    assert 'value="Ada"' in _control(_field(answer.text, "name"))


async def test_deprecate_and_undeprecate_from_the_version_page(
    core: Orchestrator, ui: httpx.AsyncClient
) -> None:
    token = await _csrf(ui)
    url = "/ui/workflows/greet/versions/1.1.0/deprecate"
    answer = await ui.post(url, data={"csrf": token, "deprecated": "true"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/workflows/greet/versions/1.1.0"
    assert core.workflows.get("greet", "1.1.0").deprecated
    again = await ui.post(url, data={"deprecated": "false"}, headers={"X-CSRF-Token": token})
    assert again.status_code == 303 and not core.workflows.get("greet", "1.1.0").deprecated
    missing = await ui.post("/ui/workflows/greet/versions/3.0.0/deprecate", data={"csrf": token})
    assert missing.status_code == 404


# --- cross-site requests and signing in -----------------------------------------------------------


@pytest.mark.parametrize("url", [START, "/ui/workflows/greet/versions/1.0.0/deprecate"])
async def test_an_action_needs_the_csrf_token_and_this_origin(
    core: Orchestrator, ui: httpx.AsyncClient, url: str
) -> None:
    token = await _csrf(ui)
    form = {"input.name": "Ada"}
    assert (await ui.post(url, data=form)).status_code == 403
    assert (await ui.post(url, data={**form, "csrf": "forged"})).status_code == 403
    evil = await ui.post(
        url,
        data={**form, "csrf": token},
        headers={"Origin": "http://evil.example"},
    )
    assert evil.status_code == 403 and "Origin" in evil.text
    cross = await ui.post(
        url, data={**form, "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    assert not core.workflows.get("greet", "1.0.0").deprecated
    assert await core.executions.list_executions(workflow="greet") == []
    same = await ui.post(url, data={**form, "csrf": token}, headers={"Origin": "http://testserver"})
    assert same.status_code == 303


async def test_with_an_api_token_the_pages_ask_to_sign_in(core: Orchestrator) -> None:
    async with _client(core, api_token="s3cret") as ui:
        page = await ui.get("/ui/workflows/greet/versions/1.0.0")
        assert page.status_code == 303
        assert page.headers["location"] == (
            "/ui/login?next=%2Fui%2Fworkflows%2Fgreet%2Fversions%2F1.0.0"
        )
        assert "weir_session" not in page.cookies
        post = await ui.post(START, data={"input.name": "Ada"}, headers=HX)
        assert post.status_code == 401 and post.headers["hx-redirect"].startswith("/ui/login")
        signed = await ui.post("/ui/login", data={"token": "s3cret", "next": "/ui/workflows"})
        assert signed.status_code == 303 and "weir_session" in signed.cookies
        assert (await ui.get("/ui/workflows/greet")).status_code == 200


# --- reading the form (pure) ----------------------------------------------------------------------

SPEC = loads(
    json.dumps(
        {
            "name": "spec",
            "version": "1.0.0",
            "inputs": {
                "s": {"type": "string"},
                "s_default": {"type": "string", "default": "hi"},
                "s_null": {"type": "string", "default": None},
                "i": {"type": "integer", "default": 1},
                "n": {"type": "number", "default": 1.5},
                "b": {"type": "boolean"},
                "o": {"type": "object", "default": {}},
                "a": {"type": "any", "default": None},
            },
            "nodes": [{"id": "x", "noop": {}}],
        }
    )
)


@pytest.mark.parametrize(
    ("form", "inputs", "errors"),
    [
        ({}, {"b": False}, {}),
        (
            {"s": "", "s_default": "", "s_null": "", "i": " ", "n": "", "o": "", "a": ""},
            {"s_default": "", "b": False},
            {},
        ),
        ({"s": " x ", "s_null": "y"}, {"s": " x ", "s_null": "y", "b": False}, {}),
        ({"i": "-12", "n": "3", "b": "true"}, {"i": -12, "n": 3, "b": True}, {}),
        ({"n": "0.25", "b": "on"}, {"n": 0.25, "b": False}, {}),
        ({"n": "1e3"}, {"n": 1000.0, "b": False}, {}),
        ({"i": "1e3"}, {"b": False}, {"i": "'1e3' is not a whole number"}),
        ({"n": "nan"}, {"b": False}, {"n": "'nan' is not a finite number"}),
        ({"o": '{"k": [1]}', "a": '"text"'}, {"o": {"k": [1]}, "a": "text", "b": False}, {}),
        ({"a": "null"}, {"a": None, "b": False}, {}),
        ({"o": "{"}, {"b": False}, {"o": "is not JSON"}),
    ],
)
def test_read_form(form: dict[str, str], inputs: dict[str, Any], errors: dict[str, str]) -> None:
    got_inputs, got_errors = read_form(SPEC, {f"input.{k}": [v] for k, v in form.items()})
    assert got_inputs == inputs
    assert set(got_errors) == set(errors)
    for name, start in errors.items():
        assert got_errors[name].startswith(start)
