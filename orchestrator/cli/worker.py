"""``weir worker TARGET``: run the ``weir.Worker`` that a Python file or module defines.

TARGET is ``path/to/file.py`` or ``package.module``, with ``:attr`` to name the worker; without
it, the module must hold exactly one ``weir.Worker`` at module level. The file's directory (or
the current one, for a module) goes first on ``sys.path``, as ``python file.py`` would have it.
The server comes from ``--server``, else from the worker itself (``WEIR_SERVER``, else
``127.0.0.1:50051``). SIGTERM or Ctrl-C drains (running tasks get the grace period) and exits 0;
a second signal exits at once. Exit codes: 2 for a TARGET that cannot be loaded or holds no
usable worker, 3 when the server refuses the worker (a wrong ``WEIR_TOKEN``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

import click
import weir

EXIT_INVALID, EXIT_REFUSED = 2, 3


def _load_file(path: Path) -> ModuleType:
    name = path.stem if path.stem.isidentifier() else "weir_worker_module"
    if name in sys.modules:  # a file named like a module already imported (json.py...)
        name = f"weir_worker_{name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise click.BadParameter(f"{path} is not a Python file", param_hint="TARGET")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load(target: str) -> tuple[ModuleType, str, str | None]:
    """The module TARGET names, how to call it in messages, and the attribute after ``:``."""
    source, _, attr = target.partition(":")
    if attr and not attr.isidentifier():
        source, attr = target, ""
    is_file = source.endswith(".py") or os.sep in source or "/" in source
    try:
        if is_file:
            path = Path(source)
            if not path.is_file():
                raise click.BadParameter(f"no such file: {source}", param_hint="TARGET")
            return _load_file(path), source, attr or None
        sys.path.insert(0, os.getcwd())
        return importlib.import_module(source), source, attr or None
    except click.BadParameter:
        raise
    except Exception as exc:
        if os.environ.get("WEIR_DEBUG"):
            traceback.print_exc()
        if isinstance(exc, ModuleNotFoundError) and exc.name == source:
            raise click.BadParameter(f"no module named {source!r}", param_hint="TARGET") from None
        raise click.BadParameter(
            f"importing {source} failed: {type(exc).__name__}: {exc} "
            "(set WEIR_DEBUG=1 for the traceback)",
            param_hint="TARGET",
        ) from None


def _find_worker(module: ModuleType, source: str, attr: str | None) -> weir.Worker:
    if attr is not None:
        if not hasattr(module, attr):
            raise click.BadParameter(f"{source} has no attribute {attr!r}", param_hint="TARGET")
        found = getattr(module, attr)
        if not isinstance(found, weir.Worker):
            raise click.BadParameter(
                f"{source}:{attr} is a {type(found).__name__}, not a weir.Worker",
                param_hint="TARGET",
            )
        return found
    workers = {name: v for name, v in vars(module).items() if isinstance(v, weir.Worker)}
    if len(workers) == 1:
        return next(iter(workers.values()))
    if not workers:
        raise click.BadParameter(
            f"{source} defines no weir.Worker at module level "
            "(create one: worker = weir.Worker(); or name it: TARGET:attr)",
            param_hint="TARGET",
        )
    names = ", ".join(sorted(workers))
    raise click.BadParameter(
        f"{source} defines {len(workers)} weir.Workers ({names}): name one, e.g. "
        f"{source}:{min(workers)}",
        param_hint="TARGET",
    )


@click.command("worker")
@click.argument("target", metavar="TARGET")
@click.option("--slots", type=click.IntRange(min=1), help="Tasks run at once (overrides the file).")
@click.option("--id", "worker_id", help="The worker's id (default: host-pid-random).")
@click.option(
    "--server",
    "-s",
    metavar="HOST:PORT",
    help="The orchestrator's gRPC address (default: WEIR_SERVER or 127.0.0.1:50051).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    help="Seconds running tasks get to finish after SIGTERM (overrides the file; default 30).",
)
@click.option(
    "--log-level",
    envvar="LOG_LEVEL",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def worker(
    target: str,
    slots: int | None,
    worker_id: str | None,
    server: str | None,
    grace: float | None,
    log_level: str,
) -> None:
    """Run the task worker TARGET defines: FILE.py or a module, with :attr to name it."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    module, source, attr = _load(target)
    found = _find_worker(module, source, attr)
    try:
        found.configure(server=server, slots=slots, worker_id=worker_id, grace=grace)
        click.echo(
            f"worker {found.worker_id}: queues {', '.join(found.queues) or '(none)'}, "
            f"{found.slots} slots, server {found.server}",
            err=True,
        )
        found.run()
    except weir.RPCError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    except weir.WorkerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INVALID)
