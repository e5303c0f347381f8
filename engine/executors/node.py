"""Run one attempt of one node: ``when``, ``args``, the executor, the outcome, the route.

``NodeRunner.try_inline`` runs the attempt on the calling thread when everything it needs is
quick and side-effect free (``noop``, short Lua, templates): no task, no thread hop, which is what
keeps scheduling overhead in microseconds. It returns None when the attempt needs to wait for
something (HTTP, Python, sleep, a sub-workflow, Lua past the inline slice); the driver then awaits
``run``, which does the same work from the start. Redoing it is safe because everything the
inline path evaluates is pure Lua with no I/O.

Both paths share one coroutine, ``_attempt``: the inline path drives it with ``send(None)`` and
it must finish without suspending; anything that would suspend raises ``_Escalate`` instead.

What an attempt sees and the ports it calls out through (sub-workflows, tasks) are in
``engine/executors/ports.py``; they are re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from engine.definition.model import (
    FAIL,
    SUCCESS,
    HttpTask,
    LuaTask,
    Node,
    NoopTask,
    PythonTask,
    QueueTask,
    SleepTask,
    SubWorkflowTask,
    WaitTask,
)
from engine.errors import TaskError, TemplateError
from engine.executors import http as http_executor
from engine.executors import python as python_executor
from engine.executors import waits
from engine.executors.outcome import outcome_of
from engine.executors.ports import (
    ExecutionContext,
    NodeAttempt,
    Routed,
    SubWorkflowLauncher,
    TaskScheduler,
)
from engine.lua import ESCALATE, LuaCode, LuaError, LuaLimits, LuaSandbox, Scope
from engine.state.events import FinishMap, NodeResult, NodeStatus
from engine.templates import Const, Expr, Template, render, render_inline

__all__ = [
    "ExecutionContext",
    "NodeAttempt",
    "NodeRunner",
    "SubWorkflowLauncher",
    "TaskScheduler",
]

_COMPLETED = NodeStatus.COMPLETED


class _Escalate(Exception):
    """Raised on the inline path when the attempt must continue asynchronously."""


class NodeRunner:
    """Runs node attempts for any number of executions; owns the HTTP client and thread pool."""

    def __init__(
        self,
        *,
        sandbox: LuaSandbox,
        limits: LuaLimits | None = None,
        launcher: SubWorkflowLauncher | None = None,
        tasks: TaskScheduler | None = None,
        clock: Callable[[], float] = time.time,
        python_workers: int = 8,
    ) -> None:
        self.sandbox = sandbox
        self.limits = limits or LuaLimits()
        self.launcher = launcher
        self.tasks = tasks
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._python_workers = python_workers

    async def close(self) -> None:
        """Close the HTTP client and the thread pool; idempotent."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def __aenter__(self) -> NodeRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- attempts ----------------------------------------------------------------------------

    def try_inline(
        self,
        ctx: ExecutionContext,
        node: Node,
        visit: int,
        attempt: int,
        item: int | None = None,
        value: Any = None,
    ) -> NodeResult | None:
        """The attempt's result if it can be had without waiting, else None.

        For a node with ``map``: with ``item`` None, its expansion (a RUNNING record, attempt 0,
        holding the items); else the attempt of item number ``item`` whose value is ``value``.
        """
        task = node.executor
        kind = type(task)
        if node.map is not None:
            if item is None:
                return _drive(self._expand(ctx, node, visit, attempt, inline=True))
            each = (item, value)
            if (kind is NoopTask or kind is LuaTask) and type(node.args) is Const:
                # The common item, as the common node below: nothing to render.
                started = self._clock()
                try:
                    output = self._simple_output(ctx, node, {"item": value, "index": item})
                except TaskError:
                    return _drive(self._item_attempt(ctx, node, visit, attempt, True, each))
                if output is ESCALATE:
                    return None
                return NodeResult(
                    node.id, visit, attempt, _COMPLETED, output, SUCCESS, None, False, None,
                    started, self._clock(), item,
                )  # fmt: skip
            return _drive(self._item_attempt(ctx, node, visit, attempt, True, each))
        if (
            (kind is NoopTask or kind is LuaTask)
            and node.when is None
            and type(node.args) is Const
            and (node.next is None or node.next.by_outcome is not None)
        ):
            # The common case, without the general attempt's machinery: nothing to evaluate
            # but the node itself. Failures take the general path, which runs it again (pure Lua).
            started = self._clock()
            output = node.args.value or None
            if kind is LuaTask:
                assert isinstance(task, LuaTask)
                scope = Scope(ctx.inputs, ctx.outputs, ctx.execution, node.args.value)
                try:
                    output = self.sandbox.run_inline(task.code, scope, self._lua_limits(task, node))
                    outcome = outcome_of(node, output)
                except TaskError:
                    return _drive(self._attempt(ctx, node, visit, attempt, inline=True))
                if output is ESCALATE:
                    return None
            else:
                outcome = SUCCESS
            return NodeResult(
                node.id, visit, attempt, _COMPLETED, output, outcome, None, False, None,
                started, self._clock(),
            )  # fmt: skip
        return _drive(self._attempt(ctx, node, visit, attempt, inline=True))

    def _simple_output(self, ctx: ExecutionContext, node: Node, each: dict[str, Any]) -> Any:
        """A ``noop`` or Lua item with constant ``args``, run inline: its output, or
        ``ESCALATE``; raises ``TaskError`` (the general path runs it again, pure Lua)."""
        task, args = node.executor, node.args
        assert isinstance(args, Const)
        if not isinstance(task, LuaTask):
            return args.value or None
        scope = Scope(ctx.inputs, ctx.outputs, ctx.execution, args.value, each)
        return self.sandbox.run_inline(task.code, scope, self._lua_limits(task, node))

    async def run(
        self,
        ctx: ExecutionContext,
        node: Node,
        visit: int,
        attempt: int,
        item: int | None = None,
        value: Any = None,
    ) -> NodeResult:
        """Run the attempt (see ``try_inline`` for ``item``); never raises for node failures
        (they become FAILED results)."""
        if node.map is not None:
            if item is None:
                return await self._expand(ctx, node, visit, attempt, inline=False)
            return await self._item_attempt(ctx, node, visit, attempt, False, (item, value))
        return await self._attempt(ctx, node, visit, attempt, inline=False)

    def try_finish_map(
        self, ctx: ExecutionContext, node: Node, finish: FinishMap
    ) -> NodeResult | None:
        """A mapped node's final result (its route evaluated) if it needs no waiting, else None."""
        return _drive(self._finish_map(ctx, node, finish, inline=True))

    async def finish_map(self, ctx: ExecutionContext, node: Node, finish: FinishMap) -> NodeResult:
        """A mapped node's final result, attempt 1, with its ``next`` route evaluated."""
        return await self._finish_map(ctx, node, finish, inline=False)

    def try_outputs_inline(self, ctx: ExecutionContext, template: Template) -> Any:
        """Rendered workflow outputs, or ``ESCALATE``; raises ``TaskError``."""
        try:
            return render_inline(template, ctx.scope, self.sandbox, self.limits)
        except LuaError as exc:
            raise TemplateError(exc.message) from None

    async def render_outputs(self, ctx: ExecutionContext, template: Template) -> Any:
        try:
            return await render(template, ctx.scope, self.sandbox, self.limits)
        except LuaError as exc:
            raise TemplateError(exc.message) from None

    async def _attempt(
        self,
        ctx: ExecutionContext,
        node: Node,
        visit: int,
        attempt: int,
        *,
        inline: bool,
    ) -> NodeResult:
        started = self._clock()
        scope = ctx.scope
        try:
            if node.when is not None and not _truthy(
                await self._phase("when", node.when, scope, inline)
            ):
                return NodeResult(
                    node.id,
                    visit,
                    attempt,
                    NodeStatus.SKIPPED,
                    started_at=started,
                    finished_at=self._clock(),
                )
            args = await self._render("args", node.args, scope, inline)
            if not isinstance(args, dict):
                raise TemplateError(f"args must render to a mapping, got {type(args).__name__}")
            deadline = started + node.timeout if node.timeout else None
            where = NodeAttempt(node.id, visit, attempt, None, deadline)
            output = await self._execute(ctx, node, where, args, inline, scope)
            if type(output) is Routed:
                output, outcome = output.output, output.outcome
            else:
                outcome = outcome_of(node, output)
        except _Escalate:
            raise
        except TaskError as exc:
            final = not exc.retryable or attempt >= node.retry.attempts
            route = await self._route_failure(ctx, node, inline) if final else None
            return NodeResult(
                node.id,
                visit,
                attempt,
                NodeStatus.FAILED,
                outcome=FAIL,
                error=exc.message,
                retryable=exc.retryable,
                route=route,
                started_at=started,
                finished_at=self._clock(),
            )
        route = None
        if node.next is not None and node.next.by_outcome is None:
            route = await self._route(ctx, node, output, outcome, inline)
            if route is None:
                return NodeResult(
                    node.id,
                    visit,
                    attempt,
                    NodeStatus.FAILED,
                    output=output,
                    outcome=FAIL,
                    error=f"no edge of next matches outcome '{outcome}'",
                    route=await self._route_failure(ctx, node, inline),
                    started_at=started,
                    finished_at=self._clock(),
                )
        return NodeResult(
            node.id,
            visit,
            attempt,
            NodeStatus.COMPLETED,
            output=output,
            outcome=outcome,
            route=route,
            started_at=started,
            finished_at=self._clock(),
        )

    async def _item_attempt(
        self,
        ctx: ExecutionContext,
        node: Node,
        visit: int,
        attempt: int,
        inline: bool,
        each: tuple[int, Any],
    ) -> NodeResult:
        """One item of a mapped node: ``args`` and the executor see ``item`` and ``index``; the
        node's ``when`` and ``next`` belong to the node, not to its items."""
        started = self._clock()
        index, value = each
        scope = Scope(ctx.inputs, ctx.outputs, ctx.execution, None, {"item": value, "index": index})
        try:
            args = await self._render("args", node.args, scope, inline)
            if not isinstance(args, dict):
                raise TemplateError(f"args must render to a mapping, got {type(args).__name__}")
            deadline = started + node.timeout if node.timeout else None
            where = NodeAttempt(node.id, visit, attempt, index, deadline)
            output = await self._execute(ctx, node, where, args, inline, scope)
            if type(output) is Routed:
                output = output.output
        except _Escalate:
            raise
        except TaskError as exc:
            return NodeResult(
                node.id, visit, attempt, NodeStatus.FAILED, None, FAIL, exc.message,
                exc.retryable, None, started, self._clock(), index,
            )  # fmt: skip
        return NodeResult(
            node.id, visit, attempt, _COMPLETED, output, SUCCESS, None, False, None,
            started, self._clock(), index,
        )  # fmt: skip

    async def _expand(
        self, ctx: ExecutionContext, node: Node, visit: int, attempt: int, *, inline: bool
    ) -> NodeResult:
        """Render a mapped node's items: its expansion record (attempt 0, RUNNING), or SKIPPED
        when its ``when`` is false, or FAILED when they are not a list."""
        spec = node.map
        assert spec is not None
        started = self._clock()
        try:
            if node.when is not None and not _truthy(
                await self._phase("when", node.when, ctx.scope, inline)
            ):
                return NodeResult(
                    node.id, visit, attempt, NodeStatus.SKIPPED,
                    started_at=started, finished_at=self._clock(),
                )  # fmt: skip
            items = await self._render("map.items", spec.items, ctx.scope, inline)
            if items == {}:
                items = []  # Lua's empty table: an empty list as much as an empty object
            if not isinstance(items, list):
                raise TemplateError(
                    f"map.items {_source(spec.items)} must be a list, got {_json_type(items)}"
                )
        except _Escalate:
            raise
        except TaskError as exc:
            return NodeResult(
                node.id, visit, attempt, NodeStatus.FAILED, None, FAIL, exc.message, False,
                await self._route_failure(ctx, node, inline), started, self._clock(),
            )  # fmt: skip
        return NodeResult(
            node.id, visit, 0, NodeStatus.RUNNING, items, started_at=started,
            finished_at=self._clock(),
        )  # fmt: skip

    async def _finish_map(
        self, ctx: ExecutionContext, node: Node, finish: FinishMap, *, inline: bool
    ) -> NodeResult:
        output = finish.output
        if finish.status is _COMPLETED:
            route = None
            if node.next is not None and node.next.by_outcome is None:
                try:
                    route = await self._route(ctx, node, output, SUCCESS, inline)
                except TaskError as exc:
                    return self._map_failed(node, finish, exc.message, None)
                if route is None:
                    message = f"no edge of next matches outcome '{SUCCESS}'"
                    route = await self._route_failure(ctx, node, inline)
                    return self._map_failed(node, finish, message, route)
            return NodeResult(
                node.id, finish.visit, 1, _COMPLETED, output, SUCCESS, None, False, route,
                finish.started_at, self._clock(),
            )  # fmt: skip
        route = await self._route_failure(ctx, node, inline)
        return self._map_failed(node, finish, finish.error or "failed", route)

    def _map_failed(
        self, node: Node, finish: FinishMap, error: str, route: str | None
    ) -> NodeResult:
        return NodeResult(
            node.id, finish.visit, 1, NodeStatus.FAILED, finish.output, FAIL, error, False, route,
            finish.started_at, self._clock(),
        )  # fmt: skip

    async def _execute(
        self,
        ctx: ExecutionContext,
        node: Node,
        where: NodeAttempt,
        args: dict[str, Any],
        inline: bool,
        scope: Scope,
    ) -> Any:
        task = node.executor
        kind = type(task)
        if kind is NoopTask:
            return args or None
        if kind is LuaTask:
            assert isinstance(task, LuaTask)
            scope = Scope(ctx.inputs, ctx.outputs, ctx.execution, args, scope.each)
            limits = self._lua_limits(task, node)
            if inline:
                value = self.sandbox.run_inline(task.code, scope, limits)
                if value is ESCALATE:
                    raise _Escalate
                return value
            return await self.sandbox.run_pooled(task.code, scope, limits)
        if inline:
            raise _Escalate
        if kind is HttpTask:
            assert isinstance(task, HttpTask)
            if task.callback is not None:
                return await waits.call_back(
                    self.tasks,
                    self._client(),
                    node,
                    task,
                    await self._http_request(task, scope),
                    ctx,
                    where,
                )
            return await self._http_call(node, task, scope)
        if kind is PythonTask:
            assert isinstance(task, PythonTask)
            return await python_executor.call(task.target, args, self._thread_pool())
        if kind is SleepTask:
            assert isinstance(task, SleepTask)
            return await waits.sleep(self.tasks, task.seconds, args or None, ctx, where)
        if kind is WaitTask:
            assert isinstance(task, WaitTask)
            return await waits.wait_signal(self.tasks, task, ctx, where)
        if kind is QueueTask:
            assert isinstance(task, QueueTask)
            if self.tasks is None:
                raise TaskError(
                    f"task on queue '{task.queue}' needs an orchestrator and its workers "
                    "(weir run has none)",
                    retryable=False,
                )
            return await self.tasks.run_task(task, args, ctx, where)
        assert isinstance(task, SubWorkflowTask)
        if self.launcher is None:
            raise TaskError(
                f"sub-workflow '{task.name}' needs an orchestrator, or `weir run --workflows DIR`",
                retryable=False,
            )
        return await self.launcher.run_child(task, args, ctx, where)

    async def _http_request(self, task: HttpTask, scope: Scope) -> tuple[str, Any, Any, Any]:
        """The rendered url, headers, json body and text body."""
        url = await self._render("http.url", task.url, scope, False)
        headers = await self._render("http.headers", task.headers, scope, False)
        body = await self._render("http.json", task.json_body, scope, False)
        text = await self._render("http.body", task.body, scope, False)
        return url, headers, body, text

    async def _http_call(self, node: Node, task: HttpTask, scope: Scope) -> Any:
        url, headers, body, text = await self._http_request(task, scope)
        return await http_executor.request(
            self._client(),
            method=task.method,
            url=url,
            headers=headers,
            json_body=body,
            body=text,
            has_json=task.json_body is not None,
            deadline=node.timeout,
        )

    async def _route(
        self, ctx: ExecutionContext, node: Node, output: Any, outcome: str, inline: bool
    ) -> str | None:
        assert node.next is not None
        scope = Scope(ctx.inputs, _With(ctx.outputs, node.id, output), ctx.execution)
        for edge in node.next.edges:
            if not edge.matches_outcome(outcome):
                continue
            if edge.when is None or _truthy(await self._phase("next", edge.when, scope, inline)):
                return edge.to
        return None

    async def _route_failure(self, ctx: ExecutionContext, node: Node, inline: bool) -> str | None:
        if node.next is None or node.next.by_outcome is not None:
            return None
        try:
            return await self._route(ctx, node, None, FAIL, inline)
        except TaskError:
            return None

    async def _phase(self, what: str, code: LuaCode, scope: Scope, inline: bool) -> Any:
        try:
            if inline:
                value = self.sandbox.run_inline(code, scope, self.limits)
                if value is ESCALATE:
                    raise _Escalate
                return value
            return await self.sandbox.run(code, scope, self.limits)
        except LuaError as exc:
            raise TemplateError(f"{what}: {exc.message}") from None

    async def _render(
        self, what: str, template: Template | None, scope: Scope, inline: bool
    ) -> Any:
        if template is None:
            return None
        try:
            if inline:
                value = render_inline(template, scope, self.sandbox, self.limits)
                if value is ESCALATE:
                    raise _Escalate
                return value
            return await render(template, scope, self.sandbox, self.limits)
        except LuaError as exc:
            raise TemplateError(f"{what}: {exc.message}") from None

    def _lua_limits(self, task: LuaTask, node: Node) -> LuaLimits:
        if task.instructions is None and task.max_memory is None and node.timeout is None:
            return self.limits
        return LuaLimits(
            instructions=task.instructions or self.limits.instructions,
            memory=task.max_memory or self.limits.memory,
            timeout=node.timeout or self.limits.timeout,
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(follow_redirects=True)
        return self._http

    def _thread_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._python_workers, thread_name_prefix="weir-python")
        return self._pool


def _drive(coro: Coroutine[Any, Any, NodeResult]) -> NodeResult | None:
    """Run ``coro`` to completion if it never suspends; None if it escalates."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except _Escalate:
        return None
    coro.close()  # it awaited something real: not an inline attempt after all
    return None


def _source(template: Template) -> str:
    """How a template reads in a message: ``"${outputs.a.files}"``, or ``a literal``."""
    if isinstance(template, Expr):
        return f'"${{{template.code.source}}}"'
    return "(a literal)" if isinstance(template, Const) else "(a template)"


def _json_type(value: Any) -> str:
    """A value's JSON type for a message: null, a boolean, a number, a string, an object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _truthy(value: Any) -> bool:
    """Lua's truth: only nil and false are false."""
    return value is not None and value is not False


class _With(Mapping[str, Any]):
    """``outputs`` plus one more entry, without copying: edges see their own node's output."""

    __slots__ = ("_base", "_key", "_value")

    def __init__(self, base: Mapping[str, Any], key: str, value: Any) -> None:
        self._base, self._key, self._value = base, key, value

    def __getitem__(self, key: str) -> Any:
        return self._value if key == self._key else self._base[key]

    def __iter__(self) -> Any:
        yield self._key
        yield from (k for k in self._base if k != self._key)

    def __len__(self) -> int:
        return len(self._base) + (self._key not in self._base)
