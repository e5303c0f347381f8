"""Static discovery and the shared host:port helpers."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.discovery import DiscoveryError, EngineEndpoint
from orchestrator.discovery.static import StaticDiscovery, join_host_port, split_host_port


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("engine-0:50051", ("engine-0", 50051)),
        ("10.0.0.1:1", ("10.0.0.1", 1)),
        (
            "weir-engine.default.svc.cluster.local:65535",
            ("weir-engine.default.svc.cluster.local", 65535),
        ),
        ("[::1]:50051", ("::1", 50051)),
        ("[fd00::a:1]:8080", ("fd00::a:1", 8080)),
    ],
)
def test_split_host_port_accepts(entry: str, expected: tuple[str, int]) -> None:
    assert split_host_port(entry) == expected


@pytest.mark.parametrize(
    "entry",
    [
        "engine-0",  # no port
        "engine-0:",  # empty port
        ":50051",  # no host
        "engine-0:0",  # port out of range
        "engine-0:65536",
        "engine-0:http",
        "engine-0:\uff15\uff10",  # fullwidth digits
        "::1:50051",  # IPv6 without brackets is ambiguous
        "[::1]",  # bracketed, no port
        "[]:50051",
        "engine 0:50051",
        "http://engine-0:50051",
    ],
)
def test_split_host_port_rejects_naming_the_entry(entry: str) -> None:
    with pytest.raises(DiscoveryError, match="engine address") as info:
        split_host_port(entry)
    assert repr(entry) in str(info.value)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [("10.0.0.1", 50051, "10.0.0.1:50051"), ("fd00::1", 1, "[fd00::1]:1"), ("e", 2, "e:2")],
)
def test_join_host_port(host: str, port: int, expected: str) -> None:
    assert join_host_port(host, port) == expected
    assert split_host_port(expected) == (host, port)


def test_constructor_rejects_a_bad_entry_by_name() -> None:
    with pytest.raises(DiscoveryError, match="'b:x'"):
        StaticDiscovery(["a:1", "b:x"])


def test_constructor_rejects_a_bare_string() -> None:
    with pytest.raises(DiscoveryError, match="list of addresses"):
        StaticDiscovery("a:1")


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        ([], frozenset()),
        (["a:1", "b:2"], frozenset({EngineEndpoint("a:1", "a:1"), EngineEndpoint("b:2", "b:2")})),
        (["a:1", "a:1"], frozenset({EngineEndpoint("a:1", "a:1")})),
        (["[::1]:5"], frozenset({EngineEndpoint("[::1]:5", "[::1]:5")})),
    ],
)
async def test_updates_yields_once_then_waits_until_cancelled(
    addresses: list[str], expected: frozenset[EngineEndpoint]
) -> None:
    updates = StaticDiscovery(addresses).updates()
    assert await anext(updates) == expected
    second = asyncio.ensure_future(anext(updates))
    done, _ = await asyncio.wait([second], timeout=0.05)
    assert not done  # nothing more comes: the iterator waits
    second.cancel()
    with pytest.raises(asyncio.CancelledError):
        await second
    await updates.aclose()  # type: ignore[attr-defined]
