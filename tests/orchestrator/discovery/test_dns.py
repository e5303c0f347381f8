"""DNS discovery: scripted resolvers (table-driven) and one real name."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence

import pytest

from orchestrator.discovery import DiscoveryError, EngineEndpoint
from orchestrator.discovery.dns import DnsDiscovery, resolve_ips
from tests.orchestrator.discovery.collect import Updates, ids

NXDOMAIN = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
NODATA = socket.gaierror(getattr(socket, "EAI_NODATA", socket.EAI_NONAME), "No address")
AGAIN = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
SLOW = "slow"  # the resolver does not answer within the timeout

Outcome = list[str] | socket.gaierror | OSError | str


class ScriptedResolver:
    """Answers each call with the next outcome; once they are used up, waits forever."""

    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        self._outcomes = list(outcomes)
        self.names: list[str] = []
        self.exhausted = asyncio.Event()

    async def __call__(self, name: str) -> list[str]:
        self.names.append(name)
        if not self._outcomes:
            self.exhausted.set()
            await asyncio.Event().wait()
        outcome = self._outcomes.pop(0)
        if outcome == SLOW:
            await asyncio.Event().wait()
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, list)
        return outcome


def engines(*addresses: str) -> frozenset[EngineEndpoint]:
    return frozenset(EngineEndpoint(a, a) for a in addresses)


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param([["10.0.0.1", "10.0.0.2"]], [engines("10.0.0.1:7", "10.0.0.2:7")], id="start"),
        pytest.param(
            [["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.1"], ["10.0.0.1"]],
            [engines("10.0.0.1:7", "10.0.0.2:7"), engines("10.0.0.1:7")],
            id="yields-only-changes",
        ),
        pytest.param([["10.0.0.1", "10.0.0.1"]], [engines("10.0.0.1:7")], id="duplicates"),
        pytest.param([["fd00::1"]], [engines("[fd00::1]:7")], id="ipv6"),
        pytest.param(
            [["10.0.0.1"], AGAIN, OSError("no resolver"), ["10.0.0.1"], ["10.0.0.3"]],
            [engines("10.0.0.1:7"), engines("10.0.0.3:7")],
            id="failure-keeps-last-set",
        ),
        pytest.param(
            [AGAIN, SLOW, ["10.0.0.1"]], [engines("10.0.0.1:7")], id="nothing-before-first"
        ),
        pytest.param(
            [["10.0.0.1"], NXDOMAIN, ["10.0.0.2"]],
            [engines("10.0.0.1:7"), frozenset(), engines("10.0.0.2:7")],
            id="nxdomain-is-empty",
        ),
        pytest.param([NODATA], [frozenset()], id="nodata-is-empty"),
        pytest.param(
            [NXDOMAIN, NXDOMAIN, ["10.0.0.1"]], [frozenset(), engines("10.0.0.1:7")], id="nx-start"
        ),
    ],
)
async def test_resolution_outcomes(
    outcomes: list[Outcome], expected: list[frozenset[EngineEndpoint]]
) -> None:
    resolver = ScriptedResolver(outcomes)
    discovery = DnsDiscovery("weir-engine", 7, interval=0.001, resolve=resolver, timeout=0.05)
    async with Updates(discovery) as updates:
        async with asyncio.timeout(5):
            await resolver.exhausted.wait()
        assert updates.seen == expected
    assert set(resolver.names) == {"weir-engine"}


async def test_failures_and_nxdomain_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    resolver = ScriptedResolver([AGAIN, ["10.0.0.1"], NXDOMAIN])
    discovery = DnsDiscovery("weir-engine", 7, interval=0.001, resolve=resolver)
    with caplog.at_level(logging.WARNING, logger="orchestrator.discovery.dns"):
        async with Updates(discovery):
            async with asyncio.timeout(5):
                await resolver.exhausted.wait()
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "resolving weir-engine failed" in m and "no engines known yet" in m for m in messages
    )
    assert any("weir-engine no longer resolves" in m for m in messages)


async def test_resolves_a_real_name() -> None:
    assert "127.0.0.1" in await resolve_ips("localhost")
    async with Updates(DnsDiscovery("localhost", 50051, interval=30)) as updates:
        found = await updates.wait(lambda s: bool(s))
    assert "127.0.0.1:50051" in ids(found)
    assert all(e.id == e.address for e in found)


@pytest.mark.parametrize(
    ("name", "port", "interval", "match"),
    [
        ("", 50051, 1.0, "ENGINE_DNS_NAME"),
        ("weir-engine", 0, 1.0, "ENGINE_PORT"),
        ("weir-engine", 65536, 1.0, "ENGINE_PORT"),
        ("weir-engine", 50051, 0.0, "interval"),
    ],
)
def test_constructor_rejects(name: str, port: int, interval: float, match: str) -> None:
    with pytest.raises(DiscoveryError, match=match):
        DnsDiscovery(name, port, interval)
