"""The SDK's pure parts: backoff, the outbox, handler signatures, the context, the thread pool."""

from __future__ import annotations

import ast
import asyncio
import functools
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import weir
from weir._backoff import Backoff
from weir._handler import Handler, parse_args
from weir._outbox import Outbox
from weir._threads import DaemonThreadPool
from weir.proto.v1 import worker_pb2 as pb

if TYPE_CHECKING:
    from weir import TaskContext  # a name only a type checker can resolve here


def test_backoff_doubles_from_a_tenth_of_a_second_to_five_with_jitter() -> None:
    highest = Backoff(uniform=lambda low, high: high)
    assert [highest.next() for _ in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    lowest = Backoff(uniform=lambda low, high: low)
    assert [lowest.next() for _ in range(3)] == [0.05, 0.1, 0.2]
    highest.reset()
    assert highest.next() == 0.1
    for _ in range(200):
        assert 0.0 < Backoff().next() <= 0.1


def _result(token: str) -> pb.TaskResult:
    return pb.TaskResult(token=token, output_json=b"1")


def test_the_outbox_gathers_everything_pending_into_one_message() -> None:
    outbox = Outbox()
    assert outbox.take() is None
    outbox.heartbeat("a", b'{"n":1}')
    outbox.heartbeat("a", b'{"n":2}')  # the latest wins
    outbox.heartbeat("b", b"")
    outbox.result(_result("b"))  # ends b: its heartbeat goes
    outbox.release("c")
    outbox.drain()
    message = outbox.take()
    assert message == pb.FromWorker(
        results=[_result("b")],
        heartbeats=[pb.TaskHeartbeat(token="a", details_json=b'{"n":2}')],
        released=["c"],
        draining=True,
    )
    assert outbox.take() is None  # draining is said once per stream
    assert outbox.unacked == 1


def test_unacknowledged_results_are_sent_again_on_a_new_stream() -> None:
    outbox = Outbox()
    outbox.result(_result("a"))
    outbox.result(_result("b"))
    outbox.release("c")
    outbox.drain()
    assert outbox.take() is not None
    assert outbox.acked("a")
    assert not outbox.acked("a")
    outbox.release("d")  # lost with the stream: the server offers d again anyway
    outbox.reconnected()
    assert outbox.take() == pb.FromWorker(results=[_result("b")], draining=True)
    outbox.acked("b")
    outbox.reconnected()
    assert outbox.take() == pb.FromWorker(draining=True)
    assert outbox.unacked == 0


def _ctx(**args: Any) -> weir.TaskContext:
    return weir.TaskContext(token="t", queue="q", args=args)


def _plain(a: int, b: int = 2) -> int:
    return a + b


def _with_context(a: int, *, ctx: weir.TaskContext) -> list[Any]:
    return [a, ctx.token]


def _hidden(a: int, c: TaskContext) -> str:  # unresolvable at run time: matched by its name
    return c.token


def _positional_context(c: weir.TaskContext, /, **rest: Any) -> dict[str, Any]:
    return {"token": c.token, **rest}


class _Callable:
    async def __call__(self, x: int) -> int:
        return x


@pytest.mark.parametrize(
    ("fn", "context", "accepted", "required", "any_keyword", "is_async"),
    [
        (_plain, None, {"a", "b"}, {"a"}, False, False),
        (_with_context, "ctx", {"a"}, {"a"}, False, False),
        (_hidden, "c", {"a"}, {"a"}, False, False),
        (_positional_context, "c", set(), set(), True, False),
        (functools.partial(_plain, b=5), None, {"a", "b"}, {"a"}, False, False),
        (_Callable(), None, {"x"}, {"x"}, False, True),
    ],
)
def test_a_signature_says_what_a_handler_takes(
    fn: Any,
    context: str | None,
    accepted: set[str],
    required: set[str],
    any_keyword: bool,
    is_async: bool,
) -> None:
    handler = Handler.of("q", fn)
    assert handler.context == context
    assert handler.accepted == accepted
    assert handler.required == required
    assert handler.any_keyword is any_keyword
    assert handler.is_async is is_async


@pytest.mark.parametrize(
    ("fn", "args", "output"),
    [
        (_plain, {"a": 1}, b"3"),
        (_with_context, {"a": 1}, b'[1,"t"]'),
        (_hidden, {"a": 1}, b'"t"'),
        (_positional_context, {"x": 1}, b'{"token":"t","x":1}'),
    ],
)
def test_a_sync_call_fills_the_arguments_and_encodes_the_output(
    fn: Any, args: dict[str, Any], output: bytes
) -> None:
    assert Handler.of("q", fn).call(_ctx(**args)) == pb.TaskResult(token="t", output_json=output)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"a": 1, "x": 2, "y": 3}, "does not accept the arguments 'x', 'y' (it accepts: a, b)"),
        ({}, "_plain() is missing the required argument 'a'"),
    ],
)
def test_arguments_that_do_not_fit_fail_without_retry(args: dict[str, Any], message: str) -> None:
    result = Handler.of("q", _plain).call(_ctx(**args))
    assert not result.failure.retryable
    assert result.failure.type == "TypeError"
    assert message in result.failure.message


async def test_an_async_call_of_a_callable_object() -> None:
    assert await Handler.of("q", _Callable()).acall(_ctx(x=4)) == pb.TaskResult(
        token="t", output_json=b"4"
    )


async def test_a_cancellation_the_handler_raises_itself_is_a_retryable_failure() -> None:
    async def gives_up() -> None:
        raise asyncio.CancelledError

    result = await Handler.of("q", gives_up).acall(_ctx())
    assert result.failure.type == "CancelledError"
    assert result.failure.retryable


def test_an_exception_without_a_message_is_named_by_its_type() -> None:
    def fails() -> None:
        raise RuntimeError

    assert Handler.of("q", fails).call(_ctx()).failure.message == "RuntimeError"


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", {}), (b'{"a": 1}', {"a": 1}), (b"null", "a JSON NoneType"), (b"{", "not JSON")],
)
def test_task_arguments_are_a_json_object(data: bytes, expected: Any) -> None:
    if isinstance(expected, dict):
        assert parse_args("q", data) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            parse_args("q", data)


async def test_a_context_can_be_built_for_a_handlers_own_tests() -> None:
    ctx = weir.TaskContext(queue="send_email", args={"to": "a@b"})
    ctx.heartbeat({"any": "thing"})  # goes nowhere
    assert not ctx.cancelled
    assert not ctx.wait_for_cancelled_sync(timeout=0)
    with pytest.raises(TypeError, match="not JSON serializable"):
        ctx.heartbeat({"bad": object()})


async def test_a_cancellation_wakes_threads_and_coroutines() -> None:
    ctx = weir.TaskContext()
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(ctx.wait_for_cancelled_sync(10)))
    thread.start()
    waiter = asyncio.ensure_future(ctx.wait_for_cancelled())
    await asyncio.sleep(0)
    ctx._cancel("stop")
    ctx._cancel("again")  # the first reason stays
    async with asyncio.timeout(10):
        await waiter
    await asyncio.to_thread(thread.join, 10)
    assert woke == [True]
    assert (ctx.cancelled, ctx.cancel_reason) == (True, "stop")
    await ctx.wait_for_cancelled()  # at once, once cancelled


def test_the_pool_runs_at_most_its_size_at_once_in_daemon_threads() -> None:
    pool = DaemonThreadPool(2, name="t")
    release = threading.Event()
    lock = threading.Lock()
    running: list[int] = [0, 0]  # now, most

    def work(n: int) -> tuple[int, bool]:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return n, threading.current_thread().daemon

    futures = [pool.submit(work, n) for n in range(5)]
    release.set()
    assert [f.result(10) for f in futures] == [(n, True) for n in range(5)]
    assert running[1] <= 2
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(work, 9)


def test_the_sdk_imports_only_the_standard_library_grpc_and_protobuf() -> None:
    allowed = set(sys.stdlib_module_names) | {"grpc", "google", "weir"}
    package = Path(weir.__file__).parent
    for path in package.rglob("*.py"):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
