"""The tests' own helpers (``tests/support``): polling with a deadline, and real engines."""

from __future__ import annotations

import socket
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.engines import running_engine
from tests.support.poll import eventually, wait_for


def countdown(calls: int) -> Callable[[], int]:
    """A check that gives 0 (not yet) ``calls - 1`` times, then the number of calls made."""
    made = 0

    def check() -> int:
        nonlocal made
        made += 1
        return made if made >= calls else 0

    return check


async def test_eventually_returns_the_first_truthy_value_of_a_sync_or_async_check() -> None:
    assert await eventually(countdown(3), interval=0) == 3
    sync = countdown(2)

    async def check() -> int:
        return sync()

    assert await eventually(check, interval=0) == 2


async def test_eventually_fails_saying_what_it_waited_for_and_how_long() -> None:
    calls = countdown(10**9)
    with pytest.raises(AssertionError) as failed:
        await eventually(calls, within=0.05, what="the moon", interval=0.01)
    assert str(failed.value) == "timed out after 0.05s waiting for the moon; the last check gave 0"
    with pytest.raises(AssertionError, match=r"waiting for .*lambda: \[\]"):
        await eventually(lambda: [], within=0)


async def test_eventually_lets_an_error_of_the_check_through() -> None:
    def broken() -> bool:
        raise KeyError("nope")

    with pytest.raises(KeyError):
        await eventually(broken)


def test_wait_for_is_the_same_for_synchronous_code() -> None:
    assert wait_for(countdown(3), interval=0) == 3
    with pytest.raises(AssertionError, match=r"^timed out after 0\.05s waiting for x; "):
        wait_for(lambda: None, within=0.05, what="x")

    async def not_sync() -> bool:
        return True

    with pytest.raises(TypeError, match="use eventually"):
        _ = wait_for(not_sync)  # raises: the coroutine is closed, never returned


async def test_running_engine_serves_on_loopback_and_is_stopped_on_exit() -> None:
    async with running_engine("probe", capacity=3) as engine:
        assert engine.port > 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="weir.engine.v1.Engine"), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", engine.port)) != 0
