"""The engine's run table: how an execution moves between phases, and bad stream messages.

A real ``EngineServer`` on 127.0.0.1:0 and real gRPC streams (``Stream``, driven by hand). After
each step, ``consistent`` checks that the counts the service keeps (running, ended, held), their
gauges and the expiry timers agree with a scan of the one table.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from weir.proto.v1 import engine_pb2 as pb
from weir.proto.v1 import engine_pb2_grpc as pb_grpc

from engine.server import codec
from engine.server.process import EngineServer
from engine.server.service import EngineService
from engine.server.session import Phase, Run
from tests.engine.test_engine_detach import finished, open_stream, read, seq_of
from tests.engine.test_engine_server import FAST, SLOW
from tests.support.engines import running_engine
from tests.support.poll import eventually

GATE: dict[str, asyncio.Event] = {}
GATED = {
    "name": "gated",
    "version": "1.0.0",
    "nodes": [{"id": "wait", "python": "tests.engine.test_engine_runs:wait_at_gate"}],
}


async def wait_at_gate() -> dict[str, Any]:
    """A python node that ends when the test opens the gate."""
    await GATE["gate"].wait()
    return {"through": True}


@pytest.fixture(autouse=True)
def _gate() -> None:
    GATE["gate"] = asyncio.Event()


@pytest.fixture
async def engine() -> AsyncIterator[EngineServer]:
    async with running_engine("runs-engine", capacity=2, shutdown_grace_period=0.2) as server:
        yield server


@pytest.fixture
async def channel(engine: EngineServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as ch:
        yield ch


def service_of(engine: EngineServer) -> EngineService:
    assert engine.service is not None
    return engine.service


def consistent(service: EngineService) -> None:
    """The counts, gauges, timers and the idle flag agree with the table."""
    runs = list(service._runs.values())
    assert all(service._runs[run.id] is run for run in runs)
    assert all(run.phase in (Phase.RUNNING, Phase.ENDED) for run in runs)
    running = sum(run.phase is Phase.RUNNING for run in runs)
    ended = sum(run.phase is Phase.ENDED for run in runs)
    held = sum(run.held for run in runs)
    assert (service.in_flight, service._ended, service._held) == (running, ended, held)
    metrics = service._metrics
    assert metrics.in_flight._value.get() == running
    assert metrics.unacknowledged._value.get() == ended
    assert metrics.detached._value.get() == held
    assert all((run.expiry is not None) == run.held for run in runs)
    assert all(
        run.task is not None and not run.task.done() for run in runs if run.phase is Phase.RUNNING
    )
    assert service._idle.is_set() == (running == 0)


def execute_message(execution_id: str, doc: dict[str, Any], lease: int = 1) -> pb.Execute:
    data, digest = codec.canonical_definition(doc)
    return pb.Execute(
        execution_id=execution_id, lease=lease, definition_digest=digest, definition_json=data
    )


def counter(service: EngineService, part: str) -> float:
    value: float = service._metrics.bad_messages.labels(part)._value.get()
    return value


# --- one bad message does not end the stream -------------------------------------------------


async def test_a_failing_execute_is_logged_counted_refused_and_the_stream_goes_on(
    engine: EngineServer,
    channel: grpc.aio.Channel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = service_of(engine)
    real = service._execute
    calls = 0

    def fails_once(session: Any, m: pb.Execute) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("handler bug")
        real(session, m)

    monkeypatch.setattr(service, "_execute", fails_once)
    stream, _ = await open_stream(channel)
    bad = pb.Execute(execution_id="bad", lease=3)  # the handler fails before reading the rest
    good = execute_message("good", FAST)
    stream.send(execute=[bad, good])  # one message: its other execute is still served
    got = await read(
        stream, lambda got: bool(finished(got)) and any(m.rejected for m in got), within=10
    )
    (refused,) = [r for m in got for r in m.rejected]
    assert (refused.execution_id, refused.lease) == ("bad", 3)
    assert refused.reason == pb.ExecutionRejected.REASON_INVALID
    assert "internal engine error" in refused.message and "handler bug" in refused.message
    assert [(f.execution_id, json.loads(f.result_json)["status"]) for f in finished(got)] == [
        ("good", "completed")
    ]

    stream.execute("later", FAST)  # a later message on the same stream too
    got = await read(stream, lambda got: bool(finished(got)))
    assert [f.execution_id for f in finished(got)] == ["later"]

    assert counter(service, "execute") == 1
    assert service._metrics.stream_errors._value.get() == 0
    assert service._metrics.streams._value.get() == 1
    (record,) = [r for r in caplog.records if "goes on" in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert "execute of bad lease 3" in record.getMessage()
    assert "127.0.0.1" in record.getMessage()  # the peer
    consistent(service)
    stream.call.cancel()


@pytest.mark.parametrize(
    ("part", "handler", "fields"),
    [
        ("attach", "_attach", {"attach": [pb.Attach(execution_id="a1", lease=1)]}),
        ("cancel", "_cancel", {"cancel": [pb.Cancel(execution_id="c1", lease=1)]}),
        (
            "child_finished",
            "children.answer",
            {"child_finished": [pb.ChildFinished(execution_id="p1", lease=1, node="kid")]},
        ),
        ("ack", "_ack", {"ack": 1}),
    ],
)
async def test_a_failing_part_does_not_stop_the_rest_of_its_message_or_the_stream(
    engine: EngineServer,
    channel: grpc.aio.Channel,
    monkeypatch: pytest.MonkeyPatch,
    part: str,
    handler: str,
    fields: dict[str, Any],
) -> None:
    service = service_of(engine)

    def broken(*args: Any) -> None:
        raise KeyError("handler bug")

    owner, _, name = handler.rpartition(".")  # a method of the service or of one of its parts
    monkeypatch.setattr(getattr(service, owner) if owner else service, name, broken)
    stream, _ = await open_stream(channel)
    stream.send(execute=[execute_message("f1", FAST)], **fields)
    got = await read(stream, lambda got: bool(finished(got)))
    assert [f.execution_id for f in finished(got)] == ["f1"]
    assert not [r for m in got for r in m.rejected]
    assert counter(service, part) == 1
    assert service._metrics.stream_errors._value.get() == 0
    stream.execute("f2", FAST)
    got = await read(stream, lambda got: bool(finished(got)))
    assert [f.execution_id for f in finished(got)] == ["f2"]
    stream.call.cancel()


async def test_a_message_that_cannot_be_decoded_still_ends_the_stream(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    outbox: asyncio.Queue[bytes] = asyncio.Queue()

    async def requests() -> AsyncIterator[bytes]:
        while True:
            yield await outbox.get()

    connect = channel.stream_stream(
        "/weir.engine.v1.Engine/Connect",
        request_serializer=None,  # bytes as they are
        response_deserializer=pb.FromEngine.FromString,
    )
    call = connect(requests())
    hello = await call.read()
    assert isinstance(hello, pb.FromEngine) and hello.HasField("hello")
    outbox.put_nowait(b"\x12\xff")  # an `execute` 255 bytes long, cut short
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        async with asyncio.timeout(5):
            while await call.read() is not grpc.aio.EOF:
                pass
    assert ended.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    service = service_of(engine)
    assert service._metrics.stream_errors._value.get() == 1
    assert sum(counter(service, p) for p in ("attach", "execute", "cancel", "ack")) == 0


# --- phases ----------------------------------------------------------------------------------


async def test_a_newer_lease_replaces_the_running_one_and_counts_once(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    service = service_of(engine)
    stream, _ = await open_stream(channel)
    stream.execute("s1", SLOW, lease=1)
    stream.execute("s2", SLOW)
    await stream.until(lambda m: m.load.in_flight == 2)
    old = service._runs["s1"]
    consistent(service)

    stream.execute("s1", SLOW, lease=2)  # the engine is full, but this replaces a running run
    await eventually(lambda: service._runs["s1"] is not old)
    assert old.phase is Phase.GONE
    assert service._runs["s1"].lease == 2 and service._runs["s1"].phase is Phase.RUNNING
    assert service.in_flight == 2
    consistent(service)
    await eventually(lambda: old.task is not None and old.task.cancelled())

    stream.execute("s3", SLOW)  # still full: the replacement took the old one's place only
    full = await stream.until(lambda m: len(m.rejected) > 0)
    assert (full.rejected[0].execution_id, full.rejected[0].reason) == (
        "s3",
        pb.ExecutionRejected.REASON_FULL,
    )
    status = await pb_grpc.EngineStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
    assert status.in_flight == 2
    stream.send(cancel=[pb.Cancel(execution_id="s1"), pb.Cancel(execution_id="s2")])
    got = await read(stream, lambda got: len(finished(got)) == 2)
    assert sorted((f.execution_id, f.lease) for f in finished(got)) == [("s1", 2), ("s2", 1)]
    assert service.in_flight == 0
    consistent(service)
    stream.call.cancel()


async def test_an_ended_unacknowledged_run_does_not_count_against_the_capacity(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    service = service_of(engine)
    stream, _ = await open_stream(channel)
    stream.execute("f1", FAST)
    await read(stream, lambda got: bool(finished(got)))  # not acknowledged
    assert service._runs["f1"].phase is Phase.ENDED
    stream.execute("s1", SLOW)
    stream.execute("s2", SLOW)
    await stream.until(lambda m: m.load.in_flight == 2)
    consistent(service)
    stream.execute("f1", FAST, lease=2)  # replaces an ended run: needs a free slot
    full = await stream.until(lambda m: len(m.rejected) > 0)
    assert full.rejected[0].reason == pb.ExecutionRejected.REASON_FULL
    assert service._runs["f1"].lease == 1
    stream.call.cancel()


async def test_detach_attach_and_ack_settle_the_run(
    engine: EngineServer, channel: grpc.aio.Channel
) -> None:
    service = service_of(engine)
    first, _ = await open_stream(channel)
    first.execute("g1", GATED, lease=5)
    await first.until(lambda m: m.load.in_flight == 1)
    run = service._runs["g1"]
    assert (run.phase, run.held, run.expiry) == (Phase.RUNNING, False, None)

    first.call.cancel()  # detached: still running, held, with its expiry timer
    await eventually(lambda: run.held)
    assert run.phase is Phase.RUNNING and run.expiry is not None
    assert service.in_flight == 1
    consistent(service)

    second, hello = await open_stream(channel)
    assert [(h.execution_id, h.lease, h.finished) for h in hello.hello.held] == [("g1", 5, False)]
    second.send(attach=[pb.Attach(execution_id="g1", lease=5)])
    await eventually(lambda: not run.held)
    assert run.session is not None and run.expiry is None
    consistent(service)

    GATE["gate"].set()
    got = await read(second, lambda got: bool(finished(got)))
    assert (finished(got)[0].execution_id, finished(got)[0].lease) == ("g1", 5)
    assert run.phase is Phase.ENDED and service.in_flight == 0
    assert service._metrics.unacknowledged._value.get() == 1
    consistent(service)

    second.send(ack=seq_of(got, lambda m: len(m.finished) > 0))
    await eventually(lambda: "g1" not in service._runs)
    assert run.phase is Phase.GONE
    consistent(service)
    second.call.cancel()
    third, hello = await open_stream(channel)
    assert list(hello.hello.held) == []
    third.call.cancel()


async def test_an_ended_held_run_expires_and_is_forgotten() -> None:
    async with (
        running_engine("expiring", capacity=2, detached_timeout=0.3) as engine,
        grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel,
    ):
        service = service_of(engine)
        stream, _ = await open_stream(channel)
        stream.execute("f1", FAST)
        await read(stream, lambda got: bool(finished(got)))  # never acknowledged
        run = service._runs["f1"]
        stream.call.cancel()
        await eventually(lambda: run.held)
        assert run.phase is Phase.ENDED
        assert service._metrics.detached._value.get() == 1
        consistent(service)
        await eventually(lambda: run.phase is Phase.GONE)
        assert service._runs == {} and run.expiry is None
        assert service._metrics.expired._value.get() == 1
        consistent(service)


async def test_a_task_that_dies_without_a_final_result_is_forgotten(
    engine: EngineServer,
    channel: grpc.aio.Channel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = service_of(engine)

    def broken(run: Run, final: pb.ExecutionFinished) -> None:
        raise RuntimeError("reporting bug")

    monkeypatch.setattr(Run, "finish", broken)  # the task dies after its driver stopped
    stream, _ = await open_stream(channel)
    stream.execute("f1", FAST)
    await eventually(
        lambda: any("without a final result" in r.getMessage() for r in caplog.records)
    )
    monkeypatch.undo()
    assert "f1" not in service._runs
    assert service.in_flight == 0 and not service._tasks
    consistent(service)
    stream.execute("f2", FAST)
    got = await read(stream, lambda got: bool(finished(got)))
    assert [f.execution_id for f in finished(got)] == ["f2"]
    stream.call.cancel()


async def test_stop_cancels_attached_and_held_runs_and_waits_for_their_tasks() -> None:
    async with (
        running_engine("stopping", capacity=3) as engine,  # stopped on leaving: what is tested
        grpc.aio.insecure_channel(f"127.0.0.1:{engine.port}") as channel,
    ):
        service = service_of(engine)
        first, _ = await open_stream(channel)
        first.execute("held", SLOW)
        await first.until(lambda m: m.load.in_flight == 1)
        first.call.cancel()
        await eventually(lambda: service._held == 1)
        second, _ = await open_stream(channel)
        second.execute("attached", SLOW)
        await second.until(lambda m: m.load.in_flight == 2)
        runs = list(service._runs.values())
        consistent(service)
    assert service._runs == {} and service._tasks == set()
    assert all(run.phase is Phase.GONE and run.task is not None for run in runs)
    assert all(run.task is not None and run.task.cancelled() for run in runs)
    consistent(service)
