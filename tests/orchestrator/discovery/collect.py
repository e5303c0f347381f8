"""Consume a discovery's ``updates()`` in a task and wait for what it yields, with deadlines.

(To wait for anything else, such as the fake API server's state: ``tests.support.poll``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from orchestrator.discovery import Discovery, EngineEndpoint

EndpointSet = frozenset[EngineEndpoint]


def ids(endpoints: EndpointSet) -> set[str]:
    return {e.id for e in endpoints}


class Updates:
    """``async with Updates(discovery) as updates:`` iterates ``updates()`` until exit."""

    def __init__(self, discovery: Discovery) -> None:
        self._discovery = discovery
        self.seen: list[EndpointSet] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Updates:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise

    async def _run(self) -> None:
        async with aclosing(self._discovery.updates()) as updates:  # type: ignore[type-var]
            async for endpoints in updates:
                self.seen.append(endpoints)
                self._changed.set()

    async def wait(self, predicate: Callable[[EndpointSet], bool], within: float = 5.0) -> Any:
        """The latest set once ``predicate`` holds for it; fails after ``within`` seconds."""
        assert self._task is not None
        async with asyncio.timeout(within):
            while not (self.seen and predicate(self.seen[-1])):
                if self._task.done():
                    self._task.result()
                    raise AssertionError("updates() ended")
                self._changed.clear()
                await self._changed.wait()
        return self.seen[-1]

    async def wait_ids(self, expected: set[str], within: float = 5.0) -> EndpointSet:
        """The latest set once its ids are exactly ``expected``."""
        result: EndpointSet = await self.wait(lambda s: ids(s) == expected, within)
        return result
