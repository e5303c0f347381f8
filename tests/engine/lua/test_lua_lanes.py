"""The inline lane, escalation to the pool, and the pool's timeouts, cancellation and lifecycle."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from engine.errors import LuaError, LuaLimitError
from engine.lua import ESCALATE, LuaLimits, LuaSandbox
from tests.support.poll import eventually

from .luasupport import BIG, SMALL, MiB, code, make_scope

LOOP_1E6 = "local n = 0 for i = 1, 1000000 do n = n + i end return n"


def test_short_loop_stays_inline(sandbox: LuaSandbox) -> None:
    source = "local n = 0 for i = 1, 1000 do n = n + i end return {sum = n}"
    assert sandbox.run_inline(code(source), make_scope(), BIG) == {"sum": 500500}


def test_long_loop_escalates(sandbox: LuaSandbox) -> None:
    assert sandbox.run_inline(code(LOOP_1E6), make_scope(), BIG) is ESCALATE


async def test_long_loop_completes_in_the_pool(sandbox: LuaSandbox) -> None:
    assert await sandbox.run(code(LOOP_1E6), make_scope(), BIG) == 500000500000


def test_inline_slice_is_capped_by_the_call_limits(sandbox: LuaSandbox) -> None:
    tight = LuaLimits(instructions=5_000, memory=8 * MiB, timeout=1.0)
    with pytest.raises(LuaLimitError, match=r"^node: exceeded its instruction budget of 5,000"):
        sandbox.run_inline(code(LOOP_1E6), make_scope(), tight)


def test_inline_memory_is_capped_by_the_call_limits(sandbox: LuaSandbox) -> None:
    source = "local s = 'x' for i = 1, 40 do s = s .. s end return #s"
    with pytest.raises(LuaLimitError, match="exceeded its memory limit of 8 MiB"):
        sandbox.run_inline(code(source), make_scope(), SMALL)


def test_memory_past_the_inline_slice_escalates() -> None:
    source = "local s = string.rep('x', 60000) local t = {} for i = 1, 300 do t[i] = s .. i end"
    with LuaSandbox(workers=1, inline_memory=1 * MiB) as sandbox:
        assert sandbox.run_inline(code(source), make_scope(), SMALL) is ESCALATE


@pytest.mark.parametrize(
    "source",
    [
        "return string.find('hello world', 'o w')",
        "return ('hello'):match('l+')",
        "local n = 0 for w in string.gmatch('a b c', '%a') do n = n + 1 end return n",
        "return (string.gsub('a,b', ',', ';'))",
        "return #string.rep('x', 70000)",
        "local t = {} for i = 1, 10001 do t[i] = -i end table.sort(t) return t[1]",
        "return load('return ' .. string.rep(' ', 65536) .. '1')()",
    ],
)
def test_heavy_functions_escalate_inline(sandbox: LuaSandbox, source: str) -> None:
    assert sandbox.run_inline(code(source), make_scope(), BIG) is ESCALATE


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("return string.find('hello world', 'o w')", 5),
        ("return ('hello'):match('l+')", "ll"),
        ("local n = 0 for w in string.gmatch('a b c', '%a') do n = n + 1 end return n", 3),
        ("return (string.gsub('a,b', ',', ';'))", "a;b"),
        ("return #string.rep('x', 70000)", 70000),
        ("local t = {} for i = 1, 10001 do t[i] = -i end table.sort(t) return t[1]", -10001),
        ("return load('return ' .. string.rep(' ', 65536) .. '1')()", 1),
    ],
)
async def test_heavy_functions_work_in_the_pool(
    sandbox: LuaSandbox, source: str, expected: object
) -> None:
    assert await sandbox.run(code(source), make_scope(), BIG) == expected


def test_plain_find_stays_inline(sandbox: LuaSandbox) -> None:
    source = "return {string.find('a.b.c', '.', 3, true), ('x+y'):find('+', 1, true)}"
    assert sandbox.run_inline(code(source), make_scope(), BIG) == [4, 2, 2]  # last call expands


def test_small_rep_and_sort_stay_inline(sandbox: LuaSandbox) -> None:
    source = "local t = {3, 1, 2} table.sort(t) return {#string.rep('ab', 100, ','), t}"
    assert sandbox.run_inline(code(source), make_scope(), BIG) == [299, [1, 2, 3]]


async def test_pool_errors_propagate(sandbox: LuaSandbox) -> None:
    with pytest.raises(LuaError, match=r"^pooled:1: nope$") as info:
        await sandbox.run_pooled(code("error('nope')", "pooled"), make_scope(), SMALL)
    assert type(info.value) is LuaError
    assert info.value.retryable is True


async def test_pool_instruction_budget(sandbox: LuaSandbox) -> None:
    with pytest.raises(LuaLimitError, match="exceeded its instruction budget of 1,000,000"):
        await sandbox.run(code(LOOP_1E6.replace("1000000", "2000000")), make_scope(), SMALL)
    with pytest.raises(LuaLimitError, match="exceeded its instruction budget of 1,000,000"):
        await sandbox.run(code("while true do end"), make_scope(), SMALL)


async def test_pool_wall_clock_timeout(sandbox: LuaSandbox) -> None:
    limits = LuaLimits(instructions=10**12, memory=8 * MiB, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(LuaLimitError, match=r"^spin: timed out after 0\.3s$"):
        await sandbox.run(code("while true do end", "spin"), make_scope(), limits)
    assert 0.25 < time.monotonic() - started < 1.0
    assert await sandbox.run_pooled(code("return 1"), make_scope(), SMALL) == 1


async def test_timeout_inside_a_coroutine(sandbox: LuaSandbox) -> None:
    limits = LuaLimits(instructions=10**12, memory=8 * MiB, timeout=0.3)
    source = "local co = coroutine.wrap(function() while true do end end) co()"
    with pytest.raises(LuaLimitError, match=r"timed out after 0\.3s"):
        await sandbox.run(code(source), make_scope(), limits)


SPIN = "print('started') while true do end"
"""Loops for ever; its ``print`` is logged by the thread that runs it."""


def started_in_the_pool(caplog: pytest.LogCaptureFixture, chunkname: str) -> bool:
    """Whether a pool worker thread has begun running ``SPIN`` as ``chunkname``."""
    return any(
        record.threadName.startswith("weir-lua-") and record.getMessage() == f"{chunkname}: started"
        for record in caplog.records
    )


async def test_cancellation_stops_the_call(
    sandbox: LuaSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="engine.lua.runtime")
    limits = LuaLimits(instructions=10**12, memory=8 * MiB, timeout=60.0)
    task = asyncio.create_task(sandbox.run(code(SPIN, "spin"), make_scope(), limits))
    await eventually(
        lambda: started_in_the_pool(caplog, "spin"), what="the call to run in the pool"
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the cancel flag stopped the loop: the only worker is free again right away
    started = time.monotonic()
    assert await sandbox.run_pooled(code("return 'free'"), make_scope(), SMALL) == "free"
    assert time.monotonic() - started < 0.5


async def test_cancelled_while_queued(
    sandbox: LuaSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="engine.lua.runtime")
    limits = LuaLimits(instructions=10**12, memory=8 * MiB, timeout=0.3)
    busy = asyncio.create_task(sandbox.run_pooled(code(SPIN, "busy"), make_scope(), limits))
    queued = asyncio.create_task(sandbox.run_pooled(code("return 1"), make_scope(), SMALL))
    # the only worker runs busy, so queued (submitted in the same loop step) waits in the queue
    await eventually(lambda: started_in_the_pool(caplog, "busy"), what="busy to take the worker")
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    with pytest.raises(LuaLimitError):
        await busy
    assert await sandbox.run_pooled(code("return 2"), make_scope(), SMALL) == 2


async def test_queue_wait_does_not_count_against_the_timeout(
    sandbox: LuaSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="engine.lua.runtime")
    spin = LuaLimits(instructions=10**12, memory=8 * MiB, timeout=0.3)
    quick = LuaLimits(instructions=10**6, memory=8 * MiB, timeout=0.2)
    busy = asyncio.create_task(sandbox.run_pooled(code(SPIN, "busy"), make_scope(), spin))
    await eventually(
        lambda: started_in_the_pool(caplog, "busy"), what="busy to take the worker", interval=0.005
    )
    # waits ~0.3 s for the only worker, then runs in well under its own 0.2 s
    assert await sandbox.run_pooled(code("return 3"), make_scope(), quick) == 3
    with pytest.raises(LuaLimitError):
        await busy


async def test_concurrent_calls() -> None:
    with LuaSandbox(workers=3) as sandbox:
        calls = [
            sandbox.run(
                code(f"local n = 0 for i = 1, {k} * 100000 do n = n + 1 end return n"),
                make_scope(),
                BIG,
            )
            for k in range(1, 13)
        ]
        assert await asyncio.gather(*calls) == [k * 100000 for k in range(1, 13)]


def test_inline_runtime_per_thread(sandbox: LuaSandbox) -> None:
    results: list[object] = []

    def work() -> None:
        results.append(sandbox.run_inline(code("return inputs.a"), make_scope(), SMALL))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [1, 1, 1, 1]


async def test_close() -> None:
    sandbox = LuaSandbox(workers=1)
    assert await sandbox.run_pooled(code("return 1"), make_scope(), SMALL) == 1
    with sandbox:
        pass
    sandbox.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.run_inline(code("return 1"), make_scope(), SMALL)
    with pytest.raises(RuntimeError, match="closed"):
        await sandbox.run_pooled(code("return 1"), make_scope(), SMALL)
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.syntax_error(code("return 1"))


def test_workers_start_lazily() -> None:
    before = {t.name for t in threading.enumerate()}
    with LuaSandbox(workers=2) as sandbox:
        assert sandbox.syntax_error(code("return 1")) is None
        assert sandbox.run_inline(code("return 1"), make_scope(), SMALL) == 1
        started = {t.name for t in threading.enumerate()} - before
        assert not any(name.startswith("weir-lua-") for name in started)
