"""The ``weir`` command line. The only place that prints and installs signal handlers.

Exit codes: 0 success, 1 the execution failed or was cancelled, 2 invalid input (definition,
inputs, arguments, unknown workflow or id), 3 an internal error or an unreachable orchestrator
(run with ``WEIR_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click
import grpc

from engine.errors import WeirError
from orchestrator.cli.convert import convert
from orchestrator.cli.events import events, logs
from orchestrator.cli.remote import apply, cancel, engines, get, list_, retry, start
from orchestrator.cli.run import run
from orchestrator.cli.serve import engine, orchestrator
from orchestrator.cli.signal import signal
from orchestrator.cli.tasks import tasks, workers
from orchestrator.cli.triggers import triggers
from orchestrator.cli.validate import schema, validate
from orchestrator.cli.versions import delete, deprecate, diff
from orchestrator.cli.worker import worker
from orchestrator.errors import RpcError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3
_INVALID = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RpcError as exc:
            click.echo(f"error: {exc.details}", err=True)
            sys.exit(EXIT_INVALID if exc.code in _INVALID else EXIT_INTERNAL)
        except WeirError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_INVALID)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("WEIR_DEBUG"):
                traceback.print_exc()
            click.echo(
                f"internal error: {type(exc).__name__}: {exc} (set WEIR_DEBUG=1 for details)",
                err=True,
            )
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="weir", prog_name="weir")
def main() -> None:
    """weir: a distributed workflow orchestrator."""


main.add_command(validate)
main.add_command(convert)
main.add_command(schema)
main.add_command(run)
for _command in (
    apply,
    start,
    retry,
    get,
    list_,
    cancel,
    signal,
    engines,
    deprecate,
    delete,
    diff,
    events,
    logs,
    triggers,
    tasks,
    workers,
    engine,
    orchestrator,
    worker,
):
    main.add_command(_command)


def _usage_errors_exit_2() -> None:
    # click already exits 2 on usage errors; keep it that way for `weir run` and friends.
    click.exceptions.UsageError.exit_code = EXIT_INVALID


_usage_errors_exit_2()
