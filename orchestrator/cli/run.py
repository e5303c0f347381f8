"""``weir run FILE``: run a workflow in this process with live progress, then print the result.

Progress goes to stderr (a live table on a terminal, one line per event otherwise), the result to
stdout: a summary with ``--output text``, exactly the result object with ``--output json``.
Ctrl-C cancels the execution and still prints the result; a second Ctrl-C exits at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.definition import Definition, load_file, parse_input_text
from engine.driver import ExecutionDriver
from engine.executors.waits import orchestrated
from engine.journal import JournalError, JournalWriter, read_journal
from engine.local import LocalWorkflows, run_workflow
from engine.state.events import Event, NodeResult
from engine.state.result import ExecutionResult
from engine.state.reuse import plan_reuse

_STYLE = {
    "pending": "dim",
    "running": "yellow",
    "completed": "green",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "magenta",
}


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "-i",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An input; strings as written, other declared types as JSON. Repeatable.",
)
@click.option("--inputs-json", metavar="JSON", help="All inputs as one JSON object (--input wins).")
@click.option(
    "--output",
    "-o",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints exactly the result object on stdout.",
)
@click.option(
    "--workflows",
    "workflows_dir",
    type=click.Path(file_okay=False, exists=True),
    help="A directory of definitions that sub-workflow nodes may call.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the execution's checkpoint to this file as it runs (JSON Lines), for --retry.",
)
@click.option(
    "--retry",
    "retry_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Retry the execution of this journal: reuse what completed, run the rest.",
)
@click.option(
    "--from",
    "from_node",
    metavar="NODE",
    help="With --retry: run NODE and everything downstream of it again too.",
)
def run(
    file: str,
    pairs: tuple[str, ...],
    inputs_json: str | None,
    output_format: str,
    workflows_dir: str | None,
    journal_path: str | None,
    retry_path: str | None,
    from_node: str | None,
) -> None:
    """Run FILE in this process; exit 0 completed, 1 failed or cancelled, 2 invalid.

    With --retry JOURNAL (written by an earlier --journal), the new execution has the same
    inputs and reuses every node that completed, as `weir retry` does on a cluster."""
    definition = load_file(file)
    waiting = orchestrated(definition)
    if waiting:
        raise click.UsageError(
            f"{file}: nodes {', '.join(waiting)} wait for callbacks or signals, which need an "
            "orchestrator (weir run has none): register it with `weir apply -f` and start it "
            "on a cluster (scripts/run-local)"
        )
    execution_id = str(uuid.uuid4())
    checkpoint: list[NodeResult] = []
    if retry_path is not None:
        if pairs or inputs_json is not None:
            raise click.UsageError("--retry runs with the journal's inputs: drop --input")
        inputs, checkpoint = _retry(definition, retry_path, from_node)
    elif from_node is not None:
        raise click.UsageError("--from goes with --retry JOURNAL")
    else:
        inputs = _inputs(definition.inputs, pairs, inputs_json)
    catalogue = LocalWorkflows.from_directory(workflows_dir) if workflows_dir else LocalWorkflows()
    catalogue.add(definition)
    err = Console(stderr=True, soft_wrap=True)
    progress = _Progress(definition.name, [n.id for n in definition.nodes], err)
    writer = _journal(journal_path, execution_id, definition, inputs)
    if writer is not None:
        for record in checkpoint:  # the reused records are this execution's checkpoint too
            writer.record(record)
    try:
        result = asyncio.run(
            _run(
                definition,
                inputs,
                catalogue,
                progress,
                execution_id=execution_id,
                on_result=writer.record if writer is not None else None,
                checkpoint=checkpoint,
            )
        ).to_json()
    finally:
        if writer is not None:
            writer.close()
    if output_format == "json":
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        _summary(result, Console())
    sys.exit(0 if result["status"] == "completed" else 1)


def _journal(
    path: str | None, execution_id: str, definition: Definition, inputs: dict[str, Any]
) -> JournalWriter | None:
    if path is None:
        return None
    try:
        writer = JournalWriter(path)
    except OSError as exc:
        raise click.UsageError(f"--journal {path}: {exc.strerror or exc}") from None
    writer.header(execution_id, definition.name, definition.version, inputs)
    return writer


def _retry(
    definition: Definition, path: str, from_node: str | None
) -> tuple[dict[str, Any], list[NodeResult]]:
    """The journal's inputs and the records a retry of its execution reuses."""
    try:
        journal = read_journal(path)
    except JournalError as exc:
        raise click.UsageError(f"--retry {exc}") from None
    if (journal.workflow, journal.version) != (definition.name, definition.version):
        raise click.UsageError(
            f"--retry {path}: the journal is of {journal.workflow} {journal.version}, "
            f"not {definition.name} {definition.version}"
        )
    try:
        plan = plan_reuse(definition, journal.records, journal.execution, from_node)
    except ValueError as exc:
        raise click.UsageError(f"--from: {exc}") from None
    if not plan.start:
        raise click.UsageError(
            f"--retry {path}: execution {journal.execution} completed: "
            "give --from NODE to run part of it again"
        )
    return journal.inputs, plan.records


def _inputs(declared: Any, pairs: tuple[str, ...], inputs_json: str | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if inputs_json is not None:
        try:
            loaded = json.loads(inputs_json)
        except ValueError as exc:
            raise click.UsageError(f"--inputs-json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise click.UsageError("--inputs-json must be a JSON object")
        inputs.update(loaded)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--input {pair!r}: expected KEY=VALUE")
        inputs[key] = parse_input_text(declared.get(key), text)
    return inputs


async def _run(
    definition: Definition,
    inputs: dict[str, Any],
    catalogue: LocalWorkflows,
    progress: _Progress,
    *,
    execution_id: str,
    on_result: Callable[[NodeResult], None] | None,
    checkpoint: list[NodeResult],
) -> ExecutionResult:
    drivers: list[ExecutionDriver] = []
    loop = asyncio.get_running_loop()
    interrupted = False

    def on_sigint() -> None:
        nonlocal interrupted
        if interrupted:
            os._exit(130)  # second Ctrl-C: leave now
        interrupted = True
        progress.console.print("[magenta]cancelling… (Ctrl-C again to exit at once)")
        for driver in drivers:
            driver.cancel("cancelled by Ctrl-C")

    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        with progress:
            return await run_workflow(
                definition,
                inputs,
                on_event=progress.on_event,
                workflows=catalogue,
                on_driver=drivers.append,
                execution_id=execution_id,
                on_result=on_result,
                checkpoint=checkpoint,
            )
    finally:
        loop.remove_signal_handler(signal.SIGINT)


class _Progress:
    """Live node table on a terminal; plain event lines otherwise."""

    def __init__(self, workflow: str, node_ids: list[str], console: Console) -> None:
        self.console = console
        self.workflow = workflow
        self.rows: dict[str, dict[str, Any]] = {
            n: {"status": "pending", "attempt": 0, "visits": 0, "note": ""} for n in node_ids
        }
        self.items: dict[str, list[int]] = {}  # a mapped node: [total, completed, failed]
        self.execution: str | None = None
        self.live: Live | None = None
        self._last_refresh = 0.0

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            self.live = Live(
                self._table(), console=self.console, auto_refresh=False, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.live.__exit__(None, None, None)

    def on_event(self, event: Event) -> None:
        if self.execution is None:
            self.execution = event.execution_id
        if event.execution_id != self.execution:
            return  # a sub-workflow's event
        kind = event.type
        if kind.startswith("item.") or kind == "node.mapped":
            self._on_item(event)
            return
        if event.node is not None and event.node in self.rows:
            row = self.rows[event.node]
            row["status"] = (
                event.type.removeprefix("node.")
                .replace("started", "running")
                .replace("retrying", "running")
            )
            row["attempt"], row["visits"] = event.attempt, event.visit
            data = event.data or {}
            row["note"] = str(data.get("error") or data.get("reason") or data.get("outcome") or "")
        if self.live is not None:
            self._refresh()
        else:
            stamp = _stamp(event.at)
            where = f" {event.node}" if event.node else ""
            extra = ""
            if event.data:
                note = (
                    event.data.get("error") or event.data.get("reason") or event.data.get("outcome")
                )
                extra = f" ({note})" if note else ""
            self.console.print(f"{stamp} {event.type}{where}{extra}", markup=False, highlight=False)

    def _on_item(self, event: Event) -> None:
        """A mapped node's progress: "37/100 items" in its row, a line per finished item."""
        node, data = event.node or "", event.data or {}
        counts = self.items.setdefault(node, [0, 0, 0])
        if event.type == "node.mapped":
            self.items[node] = counts = [int(data.get("items", 0)), 0, 0]
        elif event.type == "item.completed":
            counts[1] += 1
        elif event.type == "item.failed":
            counts[2] += 1
        progress = item_progress(*counts)
        if node in self.rows:
            self.rows[node]["note"] = progress
        if self.live is not None:
            self._refresh()
        elif event.type == "node.mapped":
            line = f"{_stamp(event.at)} node.mapped {node} ({counts[0]} items)"
            self.console.print(line, markup=False, highlight=False)
        elif event.type != "item.started":
            note = f"; {data['error']}" if data.get("error") else ""
            line = f"{_stamp(event.at)} {event.type} {node} item {data.get('item', '')}"
            self.console.print(f"{line} ({progress}{note})", markup=False, highlight=False)

    def _refresh(self) -> None:
        assert self.live is not None
        now = time.monotonic()
        if now - self._last_refresh > 0.1:
            self._last_refresh = now
            self.live.update(self._table(), refresh=True)

    def _table(self) -> Table:
        table = Table(title=f"{self.workflow} {self.execution or ''}", title_justify="left")
        for column in ("node", "status", "attempt", "visits", ""):
            table.add_column(column)
        for node, row in self.rows.items():
            style = _STYLE.get(row["status"], "")
            table.add_row(
                node,
                f"[{style}]{row['status']}",
                str(row["attempt"] or ""),
                str(row["visits"] or ""),
                row["note"][:60],
            )
        return table


def _stamp(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def item_progress(total: int, completed: int, failed: int) -> str:
    """``37/100 items`` (``, 2 failed`` when some failed): how far a mapped node is."""
    text = f"{completed + failed}/{total} items"
    return f"{text}, {failed} failed" if failed else text


def _summary(result: dict[str, Any], console: Console) -> None:
    status = result["status"]
    console.print(
        f"[bold]{result['workflow']} {result['version']}[/] execution {result['id']}: "
        f"[{_STYLE.get(status, '')}]{status}"
    )
    if result["error"]:
        where = f"node {result['error']['node']}: " if result["error"]["node"] else ""
        console.print(f"[red]error: {where}{result['error']['message']}", highlight=False)
    console.print("path: " + " → ".join(result["path"]), highlight=False)
    if result["outputs"]:
        console.print("outputs: " + json.dumps(result["outputs"], default=str), highlight=False)
