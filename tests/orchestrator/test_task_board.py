"""The task board driven through its interfaces: an engine's requests arrive as domain messages
(a ``FakeEngine``, our ``EnginePort``), workers are ``WorkerSession``s joined through the
``TaskService`` as the gRPC stream joins them, answers go through the service as REST's do.

The stores are real (memory and SQLite); the clock is real and deadlines are short.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.state.events import ExecutionStatus
from orchestrator.discovery.static import StaticDiscovery
from orchestrator.engines.messages import Ended, EngineReport, ExecuteOrder, TaskRequested
from orchestrator.errors import NotFound, TaskEnded
from orchestrator.ring import make_balancer
from orchestrator.store import TaskRow, open_store
from orchestrator.tasks.workers import WorkerSession
from orchestrator.wiring import Orchestrator
from tests.support.fakes import FakeEngine
from tests.support.poll import eventually

FLOW = json.dumps(
    {
        "name": "mail",
        "version": "1.0.0",
        "nodes": [{"id": "send", "task": "send_email", "args": {"to": "a@b.c"}}],
    }
)


@pytest.fixture(params=["memory", "sqlite"])
async def core(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Orchestrator]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'w.db'}"
    async with Orchestrator(
        orchestrator_id="t",
        discovery=StaticDiscovery([]),
        balancer=make_balancer("round-robin"),
        store=open_store(url),
        triggers_enabled=False,
    ) as core:
        await core.workflows.register(FLOW)
        yield core


def _engine(core: Orchestrator) -> FakeEngine:
    engine = FakeEngine("fake")
    core.engines.put(engine)
    core.lifecycle.ready(engine)
    return engine


async def _order(engine: FakeEngine, execution_id: str) -> ExecuteOrder:
    def placed() -> ExecuteOrder | None:
        return next((o for o in engine.orders if o.execution_id == execution_id), None)

    order: ExecuteOrder = await eventually(placed, what=f"{execution_id} placed")
    return order


def _ask(
    execution_id: str, lease: int, attempt: int = 1, item: int | None = None, **deadlines: float
) -> TaskRequested:
    return TaskRequested(
        execution_id,
        lease,
        "send",
        1,
        attempt,
        "send_email",
        b'{"to":"a@b.c"}' if item is None else b'{"to":"%d@b.c"}' % item,
        deadlines.get("timeout", 0.0),
        deadlines.get("heartbeat", 0.0),
        deadlines.get("schedule_to_start", 0.0),
        item=item,
    )


_seq = iter(range(2, 10_000))


def _report(engine: FakeEngine, core: Orchestrator, **parts: Any) -> None:
    core.lifecycle.report(engine, EngineReport(seq=next(_seq), stream=1, **parts))


async def _scheduled(core: Orchestrator, engine: FakeEngine, **deadlines: float) -> tuple[str, int]:
    execution = await core.executions.start("mail")
    lease = (await _order(engine, execution.id)).lease
    _report(engine, core, tasks=[_ask(execution.id, lease, **deadlines)])
    return execution.id, lease


def _worker(core: Orchestrator, name: str = "w1", slots: int = 2) -> WorkerSession:
    return core.tasks.join(name, ["send_email"], slots)


async def test_a_task_goes_to_a_worker_only_once_durable_and_its_answer_to_the_engine(
    core: Orchestrator,
) -> None:
    engine = _engine(core)
    execution_id, lease = await _scheduled(core, engine)
    worker = _worker(core)
    await eventually(lambda: worker.outbox.tasks, what="the task pushed to the worker")
    task = worker.outbox.tasks[0]
    assert re.fullmatch(r"[0-9a-f]{32}", task.token)  # safe in a URL and as a CLI argument
    assert (task.execution_id, task.node, task.attempt) == (execution_id, "send", 1)
    assert json.loads(task.args_json) == {"to": "a@b.c"}
    assert task.idempotency_key == f"{execution_id}/send/1"
    stored = await core.store.get_task(task.token)
    assert stored is not None and stored.queue == "send_email"

    row = await core.tasks.complete(task.token, b'{"sent": true, "outcome": "OK"}')
    assert row.status == "completed" and worker.running == set()
    answer = await eventually(lambda: engine.task_answers, what="the engine told")
    assert answer[0].completed and answer[0].lease == lease
    assert json.loads(answer[0].output_json) == {"sent": True, "outcome": "OK"}


async def test_the_same_request_again_joins_the_same_task_and_an_ended_one_is_answered_again(
    core: Orchestrator,
) -> None:
    engine = _engine(core)
    execution_id, lease = await _scheduled(core, engine)
    _report(engine, core, tasks=[_ask(execution_id, lease)])  # re-sent after a reconnect
    tasks = await core.tasks.list_tasks(execution_id=execution_id)
    assert len(tasks) == 1
    await core.tasks.complete(tasks[0].token, b"1")
    await eventually(lambda: engine.task_answers)
    _report(engine, core, tasks=[_ask(execution_id, lease)])
    await eventually(lambda: len(engine.task_answers) == 2, what="answered again")
    assert len(await core.tasks.list_tasks(execution_id=execution_id)) == 1


async def test_the_items_of_one_node_attempt_get_a_task_each_and_their_own_answer(
    core: Orchestrator,
) -> None:
    engine = _engine(core)
    execution = await core.executions.start("mail")
    lease = (await _order(engine, execution.id)).lease
    _report(engine, core, tasks=[_ask(execution.id, lease, item=i) for i in (0, 1)])
    _report(engine, core, tasks=[_ask(execution.id, lease, item=1)])  # re-sent: the same task
    worker = _worker(core)
    await eventually(lambda: len(worker.outbox.tasks) == 2, what="both items pushed")
    pushed = {t.item: t for t in worker.outbox.tasks}
    assert set(pushed) == {0, 1} and all(t.HasField("item") for t in pushed.values())
    assert json.loads(pushed[1].args_json) == {"to": "1@b.c"}
    assert [pushed[i].idempotency_key for i in (0, 1)] == [
        f"{execution.id}/send/1/0",
        f"{execution.id}/send/1/1",
    ]
    stored = await core.tasks.list_tasks(execution_id=execution.id)
    assert sorted((t.item, t.attempt) for t in stored) == [(0, 1), (1, 1)]

    await core.tasks.complete(pushed[1].token, b'"one"')
    answers = await eventually(lambda: engine.task_answers, what="the engine told")
    assert [(a.item, a.attempt, a.output_json) for a in answers] == [(1, 1, b'"one"')]
    await core.tasks.fail(pushed[0].token, "bounced")
    await eventually(lambda: len(engine.task_answers) == 2, what="the other item told")
    assert (engine.task_answers[1].item, engine.task_answers[1].completed) == (0, False)
    # after a restart the store tells them apart too
    for item in (0, 1):
        row = await core.store.find_task(execution.id, "send", 1, 1, item=item)
        assert row is not None and row.token == pushed[item].token
    assert await core.store.find_task(execution.id, "send", 1, 1) is None


async def test_answers_are_idempotent_and_fenced(core: Orchestrator) -> None:
    engine = _engine(core)
    execution_id, lease = await _scheduled(core, engine)
    (first,) = await core.tasks.list_tasks(execution_id=execution_id)
    failed = await core.tasks.fail(first.token, "smtp down", kind="IOError")
    assert failed.error == "IOError: smtp down" and failed.retryable
    again = await core.tasks.fail(first.token, "smtp down", kind="IOError")  # duplicate
    assert again.status == "failed"
    with pytest.raises(TaskEnded, match="already failed"):
        await core.tasks.complete(first.token, b"{}")
    _report(engine, core, tasks=[_ask(execution_id, lease, attempt=2)])  # retry: a new task
    second = await eventually(
        lambda: core.board.get(
            next((t.token for t in core.board.open_tasks() if t.attempt == 2), "")
        )
    )
    assert second.token != first.token
    done = await core.tasks.complete(second.token, b'{"ok": 1}')
    assert (await core.tasks.complete(second.token, b'{"ok": 1}')).token == done.token
    with pytest.raises(TaskEnded):
        await core.tasks.complete(second.token, b'{"ok": 2}')  # another answer
    with pytest.raises(NotFound, match="no task with token 'nope'"):
        await core.tasks.complete("nope", b"{}")
    text = core.metrics.render()[0].decode()
    assert 'weir_task_answers_refused_total{queue="send_email"} 2.0' in text


async def test_slots_are_never_exceeded_and_workers_take_turns(core: Orchestrator) -> None:
    engine = _engine(core)
    for _ in range(7):
        await _scheduled(core, engine)
    one, two = _worker(core, "w1", slots=2), _worker(core, "w2", slots=3)
    await eventually(lambda: len(one.running) + len(two.running) == 5)
    assert len(one.outbox.tasks) == 2 and len(two.outbox.tasks) == 3
    assert [q.pending for q in core.board.queue_stats()] == [2]
    await core.tasks.complete(one.outbox.tasks[0].token, b"1")
    await eventually(lambda: len(one.running) == 2, what="the freed slot filled again")
    assert len(one.outbox.tasks) == 3


async def test_a_broken_stream_offers_its_tasks_again_at_once(core: Orchestrator) -> None:
    engine = _engine(core)
    await _scheduled(core, engine)
    first = _worker(core, "w1", slots=1)
    await eventually(lambda: first.running)
    token = next(iter(first.running))
    core.tasks.leave(first, "stream ended")
    second = _worker(core, "w2", slots=1)
    await eventually(lambda: second.running == {token})
    row = core.board.get(token)
    assert row is not None and row.deliveries == 2 and row.worker == "w2"


async def test_deadlines_end_the_task_with_a_message_naming_which(core: Orchestrator) -> None:
    engine = _engine(core)
    nobody, _ = await _scheduled(core, engine, schedule_to_start=0.2)
    answer = await eventually(lambda: engine.task_answers, within=5)
    assert not answer[0].completed and answer[0].retryable
    assert answer[0].error.startswith("schedule_to_start: no worker took the task")
    (row,) = await core.tasks.list_tasks(execution_id=nobody)
    assert row.status == "timed_out"

    await _scheduled(core, engine, heartbeat=0.2)
    worker = _worker(core)
    await eventually(lambda: worker.running)
    answer = await eventually(lambda: engine.task_answers[1:], within=5)
    assert answer[0].error.startswith("heartbeat: worker w1 sent no heartbeat for 0.2s")
    assert worker.outbox.cancelled[0].reason.startswith("heartbeat")


async def test_a_cancelled_execution_cancels_its_tasks_and_tells_their_workers(
    core: Orchestrator,
) -> None:
    engine = _engine(core)
    execution_id, lease = await _scheduled(core, engine)
    worker = _worker(core)
    await eventually(lambda: worker.running)
    await core.executions.cancel(execution_id, "no longer needed")
    await eventually(lambda: engine.cancels, what="the engine asked to stop")
    record = core.table.get(execution_id)
    assert record is not None
    ended = core.executions.result(record).with_status(ExecutionStatus.CANCELLED)
    _report(engine, core, ended=[Ended(execution_id, lease, ended)])  # the engine stopped it
    await eventually(lambda: worker.outbox.cancelled, what="the worker told")
    assert "no longer needed" in worker.outbox.cancelled[0].reason
    (row,) = await core.tasks.list_tasks(execution_id=execution_id)
    assert row.status == "cancelled" and worker.running == set()
    assert engine.task_answers == []  # the engine cancels the node itself


async def test_bad_hellos_name_the_field(core: Orchestrator) -> None:
    from engine.errors import InputError

    with pytest.raises(InputError) as caught:
        core.tasks.join("", ["bad queue"], 0)
    text = str(caught.value)
    assert "hello.worker_id" in text and "hello.queues[0]" in text and "hello.slots" in text


def test_a_task_row_copy_has_every_field_and_is_another_object() -> None:
    values = {
        f.name: (i if f.type in ("int", "float", "float | None") else f"v{i}")
        for i, f in enumerate(dataclasses.fields(TaskRow), start=1)
    }
    values["retryable"] = True
    row = TaskRow(**values)  # type: ignore[arg-type]
    copy = row.copy()
    assert copy == row and copy is not row
    assert dataclasses.asdict(copy) == values


async def test_a_request_for_a_task_that_left_memory_finds_it_in_the_store(
    core: Orchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orchestrator.tasks.board.FINISHED_KEPT", 1)
    engine = _engine(core)
    first, lease = await _scheduled(core, engine)
    (task,) = await core.tasks.list_tasks(execution_id=first)
    await core.tasks.complete(task.token, b'{"n": 1}')
    await eventually(lambda: len(engine.task_answers) == 1)
    second, _ = await _scheduled(core, engine)
    (other,) = await core.tasks.list_tasks(execution_id=second)
    await core.tasks.complete(other.token, b'{"n": 2}')  # the first one leaves memory
    await eventually(lambda: len(engine.task_answers) == 2)
    assert core.board.get(task.token) is None

    _report(engine, core, tasks=[_ask(first, lease)])  # re-asked after a reconnect
    again = await eventually(lambda: engine.task_answers[2:], what="answered from the store")
    assert again[0].completed and json.loads(again[0].output_json) == {"n": 1}
    assert [t.token for t in await core.tasks.list_tasks(execution_id=first)] == [task.token]


def test_the_cli_spells_the_task_statuses_as_the_store_does() -> None:
    from orchestrator.cli.tasks import STATUSES
    from orchestrator.store import TASK_STATUSES

    assert STATUSES == TASK_STATUSES
