"""The ``python`` executor: ``"package.module:function"`` called with the node's ``args``.

Async functions are awaited on the loop; sync functions run in a bounded thread pool. The
return value is the output and must be JSON (dicts, lists, strings, numbers, booleans, None).
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engine.errors import PythonTaskError


@functools.lru_cache(maxsize=512)
def resolve(target: str) -> Callable[..., Any]:
    """Import ``module:function`` (the function part may be dotted: ``mod:Class.method``)."""
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise PythonTaskError(f"cannot import {module_name!r}: {exc}", retryable=False) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PythonTaskError(
                f"{target}: module {module_name!r} has no {attr!r}", retryable=False
            ) from None
    if not callable(obj):
        raise PythonTaskError(f"{target} is not callable", retryable=False)
    return obj  # type: ignore[no-any-return]


async def call(target: str, args: dict[str, Any], pool: ThreadPoolExecutor) -> Any:
    """Call the function with ``**args``; wrap whatever it raises in ``PythonTaskError``."""
    fn = resolve(target)
    try:
        if inspect.iscoroutinefunction(fn):
            result = await fn(**args)
        else:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(pool, functools.partial(fn, **args))
    except TypeError as exc:
        raise PythonTaskError(f"{target}: {exc}", retryable=False) from None
    except Exception as exc:
        raise PythonTaskError(f"{target} raised {type(exc).__name__}: {exc}") from None
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise PythonTaskError(
            f"{target} returned a value that is not JSON: {exc}", retryable=False
        ) from None
    return result
