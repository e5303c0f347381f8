"""A registered handler: how a task's JSON arguments become a call, and its end a ``TaskResult``.

``Handler.of(queue, fn)`` reads the function's signature once: which parameter (if any) takes the
``TaskContext`` (by annotation, also when annotations are strings under
``from __future__ import annotations``), which names it accepts, which it requires. ``call`` and
``acall`` then run it for one task and never raise an ``Exception``: whatever happens becomes a
``TaskResult`` (an output, or a failure that says whether a retry can help).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from weir._context import TaskContext
from weir._errors import NonRetryableError, WorkerError
from weir.proto.v1 import worker_pb2 as pb

logger = logging.getLogger("weir.worker")

_FILLABLE = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class _BadArguments(Exception):
    """The task's arguments do not fit the handler: retrying cannot help."""


def _is_context(annotation: Any) -> bool:
    if annotation is TaskContext:
        return True
    return isinstance(annotation, str) and annotation.rpartition(".")[2] == "TaskContext"


def _context_parameter(fn: Callable[..., Any], signature: inspect.Signature) -> str | None:
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # names only importable under TYPE_CHECKING, a partial, a callable object
        hints = {}
    found = [
        name
        for name, parameter in signature.parameters.items()
        if _is_context(hints.get(name, parameter.annotation))
    ]
    if len(found) > 1:
        raise WorkerError(f"{_name(fn)} has more than one TaskContext parameter: {found}")
    return found[0] if found else None


def _is_async(fn: Callable[..., Any]) -> bool:
    """An ``async def`` function, or an object whose ``__call__`` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = inspect.getattr_static(type(fn), "__call__", None)
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def _name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{name.rpartition('<locals>.')[2]}()"


def _failure(token: str, message: str, kind: str, *, retryable: bool) -> pb.TaskResult:
    failure = pb.TaskFailure(message=message, type=kind, retryable=retryable)
    return pb.TaskResult(token=token, failure=failure)


@dataclass(frozen=True, slots=True)
class Handler:
    """One queue's function, with what its signature says about the arguments it takes."""

    queue: str
    fn: Callable[..., Any]
    is_async: bool
    context: str | None
    """The parameter that receives the ``TaskContext``; None when it asks for none."""
    context_positional: bool
    accepted: frozenset[str]
    required: frozenset[str]
    any_keyword: bool
    """It has ``**kwargs``: every argument is accepted."""

    @classmethod
    def of(cls, queue: str, fn: Callable[..., Any]) -> Handler:
        """Read ``fn``'s signature; ``WorkerError`` when a task could never fill it."""
        if not callable(fn):
            raise WorkerError(f"the handler of queue {queue!r} is not callable: {fn!r}")
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise WorkerError(f"cannot read the signature of {_name(fn)}: {exc}") from None
        context = _context_parameter(fn, signature)
        accepted, required = set(), set()
        for name, parameter in signature.parameters.items():
            if name == context:
                continue
            if parameter.kind in _FILLABLE:
                accepted.add(name)
                if parameter.default is inspect.Parameter.empty:
                    required.add(name)
            elif (
                parameter.kind is inspect.Parameter.POSITIONAL_ONLY
                and parameter.default is inspect.Parameter.empty
            ):
                raise WorkerError(
                    f"{_name(fn)} (queue {queue!r}): the positional-only parameter {name!r} "
                    "cannot be filled from a task's named arguments"
                )
        kinds = {p.kind for p in signature.parameters.values()}
        context_kind = signature.parameters[context].kind if context else None
        return cls(
            queue=queue,
            fn=fn,
            is_async=_is_async(fn),
            context=context,
            context_positional=context_kind is inspect.Parameter.POSITIONAL_ONLY,
            accepted=frozenset(accepted),
            required=frozenset(required),
            any_keyword=inspect.Parameter.VAR_KEYWORD in kinds,
        )

    def call(self, ctx: TaskContext) -> pb.TaskResult:
        """Run a sync handler for ``ctx``'s task (in a worker thread) and encode its end."""
        try:
            args, kwargs = self._arguments(ctx)
        except _BadArguments as exc:
            return _failure(ctx.token, str(exc), "TypeError", retryable=False)
        try:
            value = self.fn(*args, **kwargs)
        except Exception as exc:
            return self._failed(ctx, exc)
        return self._output(ctx, value)

    async def acall(self, ctx: TaskContext) -> pb.TaskResult:
        """Run an async handler for ``ctx``'s task (on the loop) and encode its end.

        A cancellation of the task running it propagates (the worker asked for it); a
        ``CancelledError`` the handler raises of its own accord is a retryable failure.
        """
        try:
            args, kwargs = self._arguments(ctx)
        except _BadArguments as exc:
            return _failure(ctx.token, str(exc), "TypeError", retryable=False)
        try:
            value = await self.fn(*args, **kwargs)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            return self._failed(ctx, exc)
        except Exception as exc:
            return self._failed(ctx, exc)
        return self._output(ctx, value)

    def _arguments(self, ctx: TaskContext) -> tuple[list[Any], dict[str, Any]]:
        given = dict(ctx.args)
        if not self.any_keyword:
            unknown = sorted(set(given) - self.accepted)
            if unknown:
                accepts = ", ".join(sorted(self.accepted)) or "no arguments"
                raise _BadArguments(
                    f"queue {self.queue!r}: {_name(self.fn)} does not accept the argument"
                    f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                    f"(it accepts: {accepts})"
                )
        missing = sorted(self.required - set(given))
        if missing:
            raise _BadArguments(
                f"queue {self.queue!r}: {_name(self.fn)} is missing the required argument"
                f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
            )
        if self.context is None:
            return [], given
        if self.context_positional:
            return [ctx], given
        if self.context in given:
            raise _BadArguments(
                f"queue {self.queue!r}: the argument {self.context!r} has the name of "
                f"{_name(self.fn)}'s TaskContext parameter"
            )
        return [], {**given, self.context: ctx}

    def _failed(self, ctx: TaskContext, exc: BaseException) -> pb.TaskResult:
        retryable = not isinstance(exc, NonRetryableError)
        logger.warning(
            "task %s (queue %r, execution %s, node %s, attempt %d) failed%s",
            ctx.token,
            self.queue,
            ctx.execution_id,
            ctx.node,
            ctx.attempt,
            "" if retryable else " without retry",
            exc_info=exc,
        )
        message = str(exc) or type(exc).__name__
        return _failure(ctx.token, message, type(exc).__name__, retryable=retryable)

    def _output(self, ctx: TaskContext, value: Any) -> pb.TaskResult:
        try:
            data = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            message = (
                f"queue {self.queue!r}: {_name(self.fn)} returned a {type(value).__name__}, "
                f"which is not JSON-serialisable: {exc}"
            )
            return _failure(ctx.token, message, type(exc).__name__, retryable=False)
        return pb.TaskResult(token=ctx.token, output_json=data)


def parse_args(queue: str, args_json: bytes) -> Mapping[str, Any]:
    """A task's arguments: a JSON object (empty bytes: none); ``ValueError`` otherwise."""
    if not args_json:
        return {}
    try:
        args = json.loads(args_json)
    except ValueError as exc:
        raise ValueError(f"queue {queue!r}: the task's arguments are not JSON: {exc}") from None
    if not isinstance(args, dict):
        raise ValueError(
            f"queue {queue!r}: the task's arguments are a JSON {type(args).__name__}, not an object"
        )
    return args
