"""``weir.Worker`` in this process against the fake ``Workers`` server, over real gRPC."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import re
import socket
import threading
from typing import Any

import grpc
import pytest
import weir
from weir import TaskContext
from weir.proto.v1 import worker_pb2 as pb

from tests.sdk.fake import FakeServer, FakeWorkers, task
from tests.support.net import free_port
from tests.support.poll import eventually


def make_worker(server: FakeServer, **options: Any) -> weir.Worker:
    options.setdefault("grace", 2.0)
    return weir.Worker(server=server.address, **options)


class Gate:
    """Holds sync handlers until ``open``; counts how many wait at once."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._lock = threading.Lock()
        self.waiting = 0
        self.most = 0

    def wait(self) -> None:
        with self._lock:
            self.waiting += 1
            self.most = max(self.most, self.waiting)
        try:
            assert self._open.wait(10), "the gate stayed shut"
        finally:
            with self._lock:
                self.waiting -= 1

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gate() -> Any:
    g = Gate()
    try:
        yield g
    finally:
        g.open()  # no handler thread outlives its test


async def test_hello_says_who_the_worker_is(server: FakeServer, fake: FakeWorkers) -> None:
    worker = make_worker(server, slots=3, worker_id="w-1", token="s3cret")
    worker.task("a")(lambda: None)
    worker.task("b")(lambda: None)
    async with worker:
        await eventually(lambda: fake.connected)
        assert worker.stats().connected
    (hello,) = fake.hellos
    assert hello.worker_id == "w-1"
    assert list(hello.queues) == ["a", "b"]
    assert hello.slots == 3
    assert hello.sdk_version == weir.__version__
    assert list(hello.running) == []
    assert fake.metadata[0]["authorization"] == "Bearer s3cret"
    assert fake.ended == 1  # the worker half-closed the stream: a clean goodbye


async def test_server_token_and_id_default_from_the_environment(
    server: FakeServer, fake: FakeWorkers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEIR_SERVER", server.address)
    monkeypatch.setenv("WEIR_TOKEN", "from-env")
    worker = weir.Worker(["q"])
    worker.task("q")(lambda: None)
    assert worker.server == server.address
    expected_id = rf"{re.escape(socket.gethostname())}-{os.getpid()}-[0-9a-f]{{6}}"
    assert re.fullmatch(expected_id, worker.worker_id)
    async with worker:
        await eventually(lambda: fake.connected)
    assert fake.metadata[0]["authorization"] == "Bearer from-env"
    assert fake.hellos[0].worker_id == worker.worker_id


async def test_sync_and_async_handlers_get_kwargs_and_answer(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)
    threads: list[str] = []

    @worker.task("add")
    def add(a: float, b: float = 10) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {"sum": a + b}

    @worker.task("mul")
    async def mul(a: float, b: float) -> float:
        await asyncio.sleep(0)
        return a * b

    @worker.task("anything")
    def anything(**kwargs: Any) -> dict[str, Any]:
        return kwargs

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "add", a=1, b=2), task("t2", "mul", a=3, b=4))
        fake.push(task("t3", "add", a=1), task("t4", "anything", x=[1], y={"z": None}))
        await eventually(lambda: len(fake.results) == 4)
    assert fake.result("t1").output == {"sum": 3}  # type: ignore[union-attr]
    assert fake.result("t2").output == 12  # type: ignore[union-attr]
    assert fake.result("t3").output == {"sum": 11}  # type: ignore[union-attr]
    assert fake.result("t4").output == {"x": [1], "y": {"z": None}}  # type: ignore[union-attr]
    assert threads and all(name != "MainThread" for name in threads)
    assert worker.stats().unacked == 0


async def test_the_context_goes_to_the_parameter_annotated_with_it(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)

    @worker.task("info")
    def info(x: int, ctx: TaskContext) -> dict[str, Any]:  # a string annotation here
        return {
            "x": x,
            "token": ctx.token,
            "execution_id": ctx.execution_id,
            "workflow": ctx.workflow,
            "node": ctx.node,
            "visit": ctx.visit,
            "attempt": ctx.attempt,
            "item": ctx.item,
            "queue": ctx.queue,
            "idempotency_key": ctx.idempotency_key,
            "deadline": ctx.deadline,
            "heartbeat_timeout": ctx.heartbeat_timeout,
            "args": dict(ctx.args),
            "cancelled": ctx.cancelled,
        }

    @worker.task("ainfo")
    async def ainfo(context: weir.TaskContext, /) -> list[Any]:
        return [context.token, context.deadline, context.heartbeat_timeout, context.item]

    async with worker:
        await eventually(lambda: fake.connected)
        timed = task("t2", "ainfo")
        timed.deadline, timed.heartbeat_timeout_s, timed.attempt = 1234.5, 3.0, 2
        timed.item = 0  # an item of a node with map: 0 is an index, not "none"
        fake.push(task("t1", "info", x=7), timed)
        await eventually(lambda: len(fake.results) == 2)
    assert fake.result("t1").output == {  # type: ignore[union-attr]
        "x": 7,
        "token": "t1",
        "execution_id": "exec-t1",
        "workflow": "wf",
        "node": "node-t1",
        "visit": 1,
        "attempt": 1,
        "item": None,
        "queue": "info",
        "idempotency_key": "key-t1",
        "deadline": None,
        "heartbeat_timeout": None,
        "args": {"x": 7},
        "cancelled": False,
    }
    assert fake.result("t2").output == ["t2", 1234.5, 3.0, 0]  # type: ignore[union-attr]


async def test_an_exception_fails_the_task_retryably_with_its_type_and_message(
    server: FakeServer, fake: FakeWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(server)

    @worker.task("sync")
    def sync() -> None:
        raise ValueError("the disk is full")

    @worker.task("async")
    async def async_() -> None:
        raise KeyError("nope")

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "sync"), task("t2", "async"))
        await eventually(lambda: len(fake.results) == 2)
    failure = fake.result("t1").failure  # type: ignore[union-attr]
    assert (failure.message, failure.type, failure.retryable) == (
        "the disk is full",
        "ValueError",
        True,
    )
    assert "Traceback" not in failure.message
    assert fake.result("t2").failure.type == "KeyError"  # type: ignore[union-attr]
    logged = [r for r in caplog.records if r.exc_info and "t1" in r.getMessage()]
    assert logged and logged[0].levelno == logging.WARNING  # the traceback goes to the log


async def test_a_non_retryable_error_fails_without_retry(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)

    class InvalidAddress(weir.NonRetryableError):
        pass

    @worker.task("send")
    def send(to: str) -> None:
        raise InvalidAddress(f"not an address: {to}")

    @worker.task("plain")
    async def plain() -> None:
        raise weir.NonRetryableError("give up")

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "send", to="bob"), task("t2", "plain"))
        await eventually(lambda: len(fake.results) == 2)
    failure = fake.result("t1").failure  # type: ignore[union-attr]
    assert (failure.message, failure.type, failure.retryable) == (
        "not an address: bob",
        "InvalidAddress",
        False,
    )
    assert fake.result("t2").failure.type == "NonRetryableError"  # type: ignore[union-attr]
    assert not fake.result("t2").failure.retryable  # type: ignore[union-attr]


async def test_an_output_that_is_not_json_fails_naming_its_type(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)

    class Thing:
        pass

    worker.task("thing")(lambda: {"a": Thing()})
    worker.task("nan")(lambda: math.nan)
    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "thing"), task("t2", "nan"))
        await eventually(lambda: len(fake.results) == 2)
    failure = fake.result("t1").failure  # type: ignore[union-attr]
    assert not failure.retryable
    assert "'thing'" in failure.message
    assert "returned a dict, which is not JSON-serialisable" in failure.message
    assert "Thing" in failure.message
    assert "returned a float" in fake.result("t2").failure.message  # type: ignore[union-attr]


async def test_arguments_the_handler_does_not_take_fail_clearly(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)

    @worker.task("send_email")
    def send_email(to: str, ctx: TaskContext) -> None:
        raise AssertionError("never called")

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "send_email", to="a", bogus=1), task("t2", "send_email"))
        fake.push(task("t3", "send_email", to="a", ctx=1))
        bad = pb.Task(token="t4", queue="send_email", args_json=b"[1, 2]")
        fake.push(bad, pb.Task(token="t5", queue="elsewhere"))
        await eventually(lambda: len(fake.results) == 5)
    failures = {t: fake.result(t).failure for t in ("t1", "t2", "t3", "t4", "t5")}  # type: ignore[union-attr]
    assert not any(f.retryable for f in failures.values())
    assert failures["t1"].message == (
        "queue 'send_email': send_email() does not accept the argument 'bogus' (it accepts: to)"
    )
    assert failures["t2"].message == (
        "queue 'send_email': send_email() is missing the required argument 'to'"
    )
    assert "'ctx'" in failures["t3"].message
    assert "a JSON list, not an object" in failures["t4"].message
    assert "no handler for queue 'elsewhere'" in failures["t5"].message


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_never_more_than_slots_at_once(
    server: FakeServer, fake: FakeWorkers, gate: Gate, kind: str
) -> None:
    slots = 2
    worker = make_worker(server, slots=slots)
    running = 0
    most = 0
    opened = asyncio.Event()

    if kind == "sync":

        @worker.task("q")
        def work(n: int) -> int:
            gate.wait()
            return n

    else:

        @worker.task("q")
        async def work(n: int) -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await opened.wait()
            finally:
                running -= 1
            return n

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(*(task(f"t{n}", "q", n=n) for n in range(slots + 3)))
        await eventually(lambda: len(fake.released) == 3)
        assert worker.stats().running == slots
        assert fake.released == ["t2", "t3", "t4"]
        gate.open()
        opened.set()
        await eventually(lambda: len(fake.results) == slots)
    assert sorted(r.result.token for r in fake.results) == ["t0", "t1"]
    assert (gate.most if kind == "sync" else most) == slots


async def test_a_cancellation_reaches_an_async_handler(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)
    seen: list[Any] = []

    @worker.task("slow")
    async def slow(ctx: TaskContext) -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append((ctx.cancelled, ctx.cancel_reason))
            raise
        return "never"

    worker.task("quick")(lambda: "done")
    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "slow"))
        await eventually(lambda: worker.stats().running == 1)
        fake.cancel("t1", "execution cancelled by bob")
        await eventually(lambda: seen)
        await eventually(lambda: worker.stats().running == 0)
        fake.push(task("t2", "quick"))
        await eventually(lambda: fake.result("t2"))
    assert seen == [(True, "execution cancelled by bob")]
    assert fake.result("t1") is None  # the server no longer waits for it


async def test_a_cancellation_shows_in_a_sync_handlers_context(
    server: FakeServer, fake: FakeWorkers
) -> None:
    worker = make_worker(server)
    seen: list[Any] = []

    @worker.task("slow")
    def slow(ctx: TaskContext) -> str:
        seen.append(ctx.wait_for_cancelled_sync(timeout=10))
        seen.append(ctx.cancelled)
        return "late"

    worker.task("quick")(lambda: "done")
    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "slow"))
        await eventually(lambda: worker.stats().running == 1)
        fake.cancel("t1")
        await eventually(lambda: worker.stats().running == 0)
        fake.push(task("t2", "quick"))
        await eventually(lambda: fake.result("t2"))
    assert seen == [True, True]
    assert fake.result("t1") is None


async def test_heartbeats_from_sync_and_async_code_arrive_with_details(
    server: FakeServer, fake: FakeWorkers, gate: Gate
) -> None:
    worker = make_worker(server)
    go = asyncio.Event()

    @worker.task("sync")
    def sync(ctx: TaskContext) -> None:
        ctx.heartbeat({"step": 1})
        gate.wait()
        ctx.heartbeat()

    @worker.task("async")
    async def async_(ctx: TaskContext) -> None:
        ctx.heartbeat(["half", 0.5])
        await go.wait()

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "sync"), task("t2", "async"))
        await eventually(lambda: len(fake.heartbeats) >= 2)
        beats = {h.token: h.details_json for h in fake.heartbeats}
        assert beats == {"t1": b'{"step":1}', "t2": b'["half",0.5]'}
        gate.open()
        go.set()
        await eventually(lambda: len(fake.results) == 2)


async def test_keep_alives_when_there_is_nothing_to_say(
    server: FakeServer, fake: FakeWorkers
) -> None:
    fake.heartbeat_interval = 0.05
    worker = make_worker(server)
    worker.task("q")(lambda: None)
    async with worker:
        await eventually(lambda: fake.keepalives >= 3)


async def test_an_unacknowledged_result_is_sent_again_on_the_next_stream(
    server: FakeServer, fake: FakeWorkers
) -> None:
    fake.auto_ack = False
    worker = make_worker(server)
    worker.task("q")(lambda n: {"n": n})
    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "q", n=1))
        await eventually(lambda: fake.result("t1"))
        assert worker.stats().unacked == 1
        await server.stop()
        await eventually(lambda: not worker.stats().connected)
        await server.start()
        await eventually(lambda: len(fake.results_of("t1")) == 2)
        assert [r.stream for r in fake.results_of("t1")] == [1, 2]
        assert fake.results_of("t1")[1].output == {"n": 1}
        assert list(fake.hellos[1].running) == []
        fake.ack("t1", pb.VERDICT_DUPLICATE)
        await eventually(lambda: worker.stats().unacked == 0)
        assert worker.stats().streams == 2


async def test_a_task_running_across_a_reconnect_is_named_in_the_hello(
    server: FakeServer, fake: FakeWorkers, gate: Gate
) -> None:
    worker = make_worker(server)
    contexts: dict[str, TaskContext] = {}

    @worker.task("q")
    def work(ctx: TaskContext) -> str:
        contexts[ctx.token] = ctx
        gate.wait()
        return "finished"

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "q"), task("t2", "q"))
        await eventually(lambda: worker.stats().running == 2)
        await server.stop()
        await server.start()
        await eventually(lambda: fake.connected and fake.streams == 2)
        assert sorted(fake.hellos[1].running) == ["t1", "t2"]
        # kept on this worker: t1; given to another meanwhile: t2
        fake.ack("t1", pb.VERDICT_ACCEPTED)
        fake.ack("t2", pb.VERDICT_REFUSED, "offered to another worker")
        await eventually(lambda: contexts["t2"].cancelled)
        assert contexts["t2"].cancel_reason == "offered to another worker"
        assert not contexts["t1"].cancelled
        gate.open()
        await eventually(lambda: fake.result("t1"))
    assert fake.result("t1").stream == 2  # type: ignore[union-attr]
    assert fake.result("t1").output == "finished"  # type: ignore[union-attr]
    assert fake.result("t2") is None


async def test_a_refused_answer_is_logged_and_forgotten(
    server: FakeServer, fake: FakeWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    fake.auto_ack = False
    worker = make_worker(server)
    worker.task("q")(lambda: 1)
    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "q"))
        await eventually(lambda: fake.result("t1"))
        fake.ack("t1", pb.VERDICT_REFUSED, "the task timed out")
        await eventually(lambda: worker.stats().unacked == 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("t1" in w and "VERDICT_REFUSED: the task timed out" in w for w in warnings)


async def test_an_unreachable_server_is_retried_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="weir.worker")
    workers = FakeWorkers()
    server = FakeServer(workers)
    server.port = free_port()
    worker = make_worker(server)
    worker.task("q")(lambda: "up")

    def attempts() -> int:
        return sum("cannot reach" in r.getMessage() for r in caplog.records)

    async with worker:
        await eventually(lambda: attempts() >= 3)
        await server.start()
        try:
            await eventually(lambda: workers.connected)
            workers.push(task("t1", "q"))
            await eventually(lambda: workers.result("t1"))
        finally:
            await worker.aclose()
            await server.stop()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == [f"cannot reach {server.address}"]
    assert any(r.getMessage().startswith("reconnected to") for r in caplog.records)


async def test_a_refusal_for_good_ends_serve_with_rpc_error(
    server: FakeServer, fake: FakeWorkers
) -> None:
    fake.refuse_with = grpc.StatusCode.UNAUTHENTICATED
    worker = make_worker(server, token="wrong")
    worker.task("q")(lambda: None)
    with pytest.raises(weir.RPCError) as caught:
        async with asyncio.timeout(10):
            await worker.serve()
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert "refused by the fake" in str(caught.value)
    assert not worker.stats().serving


async def test_stop_drains_finishes_running_tasks_and_takes_no_new_one(
    server: FakeServer, fake: FakeWorkers, gate: Gate
) -> None:
    worker = make_worker(server, grace=10)

    @worker.task("q")
    def work() -> str:
        gate.wait()
        return "done"

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "q"))
        await eventually(lambda: worker.stats().running == 1)
        worker.stop()
        await eventually(lambda: fake.draining)
        fake.push(task("t2", "q"))
        await eventually(lambda: fake.released == ["t2"])
        gate.open()
        await eventually(lambda: not worker.stats().serving)
    assert fake.result("t1").output == "done"  # type: ignore[union-attr]
    assert fake.ended == 1


async def test_tasks_still_running_past_the_grace_are_cancelled_and_released(
    server: FakeServer, fake: FakeWorkers, gate: Gate
) -> None:
    worker = make_worker(server, grace=0.2)
    seen: list[Any] = []

    @worker.task("sync")
    def sync(ctx: TaskContext) -> str:
        gate.wait()
        seen.append(("sync", ctx.cancelled, ctx.cancel_reason))
        return "late"

    @worker.task("async")
    async def async_(ctx: TaskContext) -> str:
        try:
            await asyncio.Event().wait()
        finally:
            seen.append(("async", ctx.cancelled, ctx.cancel_reason))
        return "never"

    async with worker:
        await eventually(lambda: fake.connected)
        fake.push(task("t1", "sync"), task("t2", "async"))
        await eventually(lambda: worker.stats().running == 2)
    assert sorted(fake.released) == ["t1", "t2"]
    assert fake.results == []
    gate.open()
    await eventually(lambda: len(seen) == 2)
    assert sorted(seen) == [
        ("async", True, "the worker is stopping"),
        ("sync", True, "the worker is stopping"),
    ]


async def test_serve_needs_a_handler_for_each_queue() -> None:
    with pytest.raises(weir.WorkerError, match="has no queue"):
        await weir.Worker().serve()
    worker = weir.Worker(["a", "b"])
    worker.task("a")(lambda: None)
    with pytest.raises(weir.WorkerError, match="no handler for queue\\(s\\) 'b'"):
        await worker.serve()


def test_set_up_mistakes_are_worker_errors() -> None:
    worker = weir.Worker()
    worker.task("a")(lambda: None)
    with pytest.raises(weir.WorkerError, match="queue 'a' has a handler already"):
        worker.task("a")(lambda: None)
    with pytest.raises(weir.WorkerError, match="positional-only parameter 'x'"):

        @worker.task("b")
        def b(x: int, /) -> None: ...

    with pytest.raises(weir.WorkerError, match="slots"):
        weir.Worker(slots=0)
    with pytest.raises(weir.WorkerError, match="grace"):
        weir.Worker(grace=-1)
    with pytest.raises(weir.WorkerError, match="not callable"):
        worker.task("c")(42)  # type: ignore[type-var]


async def test_stop_from_another_thread_ends_run(server: FakeServer, fake: FakeWorkers) -> None:
    worker = make_worker(server)
    worker.task("q")(lambda: None)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        await eventually(lambda: fake.connected)
    finally:
        worker.stop()
        await asyncio.to_thread(thread.join, 10)
    assert not thread.is_alive()
    assert fake.ended == 1
