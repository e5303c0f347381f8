"""The UI's token rules over real HTTP, and its sessions and CSRF checks as units.

With ``API_TOKEN``: every page asks to sign in (a page redirects to the sign-in form, a fragment
or a POST answers 401 with ``HX-Redirect``), the token is asked once and a session cookie kept,
a wrong token is refused, ``next`` cannot leave the UI, signing out works, and the REST API's
bearer rule is unchanged beside it. Without a token the UI asks for nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from engine.server.process import EngineServer
from orchestrator.api.rest.app import create_app
from orchestrator.server import OrchestratorServer
from orchestrator.ui.session import COOKIE, Sessions, cross_site
from tests.support.engines import running_engine
from tests.support.servers import start_server
from tests.support.ui import UiSession, memory_orchestrator

TOKEN = "ui-s3cret"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_is_signed_expires_and_dies_with_the_token() -> None:
    clock = Clock()
    sessions = Sessions(TOKEN, ttl=60, clock=clock)
    cookie = sessions.issue()
    assert sessions.valid(cookie)
    issued, nonce, signature = cookie.split(".")
    assert not sessions.valid(f"{int(issued) + 1000}.{nonce}.{signature}")  # forged time
    assert not sessions.valid(f"{issued}.{nonce}.{'0' * len(signature)}")
    assert not sessions.valid("") and not sessions.valid(None) and not sessions.valid("a.b")
    assert Sessions(TOKEN, clock=clock).valid(cookie)  # another replica, same token
    assert not Sessions("another token", clock=clock).valid(cookie)
    clock.now += 61
    assert not sessions.valid(cookie)
    assert sessions.token_matches(TOKEN) and not sessions.token_matches(TOKEN + "x")
    assert not Sessions("").token_matches("")  # no token: nothing to sign in with


def test_csrf_tokens_belong_to_their_session() -> None:
    sessions = Sessions("")
    one, two = sessions.issue(), sessions.issue()
    assert sessions.csrf_matches(one, sessions.csrf(one))
    assert not sessions.csrf_matches(two, sessions.csrf(one))
    assert not sessions.csrf_matches(one, "")
    assert Sessions("").valid(one)  # without a token, any replica or restart accepts it
    assert not Sessions("a token").valid(one)


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),
        ({"origin": "http://ui.example:8080"}, False),
        ({"sec-fetch-site": "same-origin"}, False),
        ({"sec-fetch-site": "cross-site"}, True),
        ({"origin": "http://evil.example"}, True),
        ({"origin": "null"}, True),
    ],
)
def test_cross_site_requests_are_told_apart(headers: dict[str, str], refused: bool) -> None:
    assert (cross_site(headers, "ui.example:8080") is not None) is refused


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine(capacity=10) as server:
        yield server


@pytest.fixture
async def server(engine: EngineServer, tmp_path: Path) -> AsyncIterator[OrchestratorServer]:
    server = await start_server(engine, tmp_path, api_token=TOKEN)
    try:
        yield server
    finally:
        await server.stop(grace=0.5)


@pytest.fixture
async def http(server: OrchestratorServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.http_port}", timeout=20
    ) as client:
        yield client


async def test_with_a_token_the_ui_asks_once_and_keeps_a_session(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/ui/executions?status=failed")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fexecutions%3Fstatus%3Dfailed"
    fragment = await http.get("/ui/executions", headers={"HX-Request": "true"})
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"].startswith("/ui/login")
    stream = await http.get("/ui/stream")
    assert stream.status_code == 303
    refused = await http.post("/ui/executions/x/cancel")
    assert refused.status_code == 401

    form = await http.get("/ui/login?next=/ui/events")
    assert form.status_code == 200 and 'type="password"' in form.text
    wrong = await http.post("/ui/login", data={"token": "guess", "next": "/ui/events"})
    assert wrong.status_code == 401 and "not the API token" in wrong.text
    assert COOKIE not in wrong.headers.get("set-cookie", "")
    evil = await http.post(
        "/ui/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"}
    )
    assert evil.status_code == 403
    signed = await http.post("/ui/login", data={"token": TOKEN, "next": "/ui/events"})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/events"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie

    ui = UiSession(http)
    html = await ui.page("/ui/events")
    assert "Sign out" in html and TOKEN not in html
    assert (await http.get("/ui/executions")).status_code == 200
    # the REST API's own rule is unchanged: the cookie is not a bearer token
    assert (await http.get("/api/v1/executions")).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await http.get("/api/v1/executions", headers=bearer)).status_code == 200

    out = await ui.post("/ui/logout", htmx=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    http.cookies.clear()
    assert (await http.get("/ui")).status_code == 303


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/ui", "/api/v1/executions", "/ui\\@evil"]
)
async def test_next_never_leaves_the_ui(http: httpx.AsyncClient, target: str) -> None:
    signed = await http.post("/ui/login", data={"token": TOKEN, "next": target})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui"


async def test_over_tls_the_session_cookie_is_secure() -> None:
    async with memory_orchestrator() as core:
        app = create_app(core.services, api_token=TOKEN)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://ui.example") as client:
            signed = await client.post("/ui/login", data={"token": TOKEN})
            assert signed.status_code == 303
            cookie = signed.headers["set-cookie"]
            assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


async def test_with_the_ui_off_only_the_apis_are_served() -> None:
    async with memory_orchestrator() as core:
        app = create_app(core.services, ui=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/ui")).status_code == 404
            assert (await client.get("/ui/static/app.js")).status_code == 404
            assert (await client.get("/api/v1/executions")).status_code == 200
