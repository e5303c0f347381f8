"""A browser's session with the UI, over HTTP: ``UiSession`` keeps the session cookie, reads the
CSRF token the page carries (``<body data-csrf>``) and sends it with every POST, as the page's
htmx does. ``memory_orchestrator()``: an orchestrator core on the memory store with no engine,
for the UI's tests that need no execution to run."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from orchestrator.discovery.static import StaticDiscovery
from orchestrator.ring import make_balancer
from orchestrator.store import open_store
from orchestrator.wiring import Orchestrator

CSRF = re.compile(r'<body[^>]* data-csrf="([^"]*)"')


class UiSession:
    """``await ui.page(url)`` for a page (its CSRF token kept); ``await ui.post(url, data)``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.csrf = ""

    async def page(self, url: str, status: int = 200, **kwargs: Any) -> str:
        response = await self.http.get(url, **kwargs)
        assert response.status_code == status, (url, response.status_code, response.text[:2000])
        assert "Traceback" not in response.text
        found = CSRF.search(response.text)
        if found and found.group(1):
            self.csrf = found.group(1)
        return response.text

    async def post(
        self, url: str, data: dict[str, str] | None = None, *, htmx: bool = True, **kwargs: Any
    ) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kwargs.pop("headers", {})}
        if htmx:
            headers["HX-Request"] = "true"
        return await self.http.post(url, data=data or {}, headers=headers, **kwargs)


@contextlib.asynccontextmanager
async def memory_orchestrator() -> AsyncIterator[Orchestrator]:
    """An orchestrator core on ``memory://`` with no engine and no cron triggers."""
    async with Orchestrator(
        orchestrator_id="t",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("round-robin"),
        store=open_store("memory://"),
        triggers_enabled=False,
    ) as core:
        yield core
