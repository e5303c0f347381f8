"""Run workflows in this process, with no server: what ``weir run`` uses.

``run_workflow`` validates inputs, runs the execution to its end and returns the result object.
Sub-workflow nodes are resolved from a ``LocalWorkflows`` catalogue (``weir run --workflows DIR``)
and run as child executions in the same process, linked to their parent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from engine.definition.model import Definition, SubWorkflowTask
from engine.definition.parser import load_file
from engine.definition.semver import Version, VersionRange
from engine.definition.values import resolve_inputs
from engine.driver import EventSink, ExecutionDriver, ResultSink
from engine.errors import InputError, TaskError
from engine.executors.node import ExecutionContext, NodeAttempt, NodeRunner
from engine.lua import LuaSandbox
from engine.state.events import ExecutionStatus, NodeResult
from engine.state.result import ChildRef, ExecutionResult, ParentRef

MAX_DEPTH = 10
"""Sub-workflows nested deeper than this fail instead of recursing forever."""


class LocalWorkflows:
    """Definitions by name and version, for resolving ``workflow: {name, version}`` locally."""

    def __init__(self, definitions: Iterable[Definition] = ()) -> None:
        self._by_name: dict[str, dict[Version, Definition]] = {}
        for definition in definitions:
            self.add(definition)

    @classmethod
    def from_directory(
        cls, directory: str | Path, *, sandbox: LuaSandbox | None = None
    ) -> LocalWorkflows:
        """Load every ``*.yaml``, ``*.yml`` and ``*.json`` file in ``directory``."""
        files = sorted(
            p for p in Path(directory).iterdir() if p.suffix in (".yaml", ".yml", ".json")
        )
        return cls(load_file(p, sandbox=sandbox) for p in files)

    def add(self, definition: Definition) -> None:
        self._by_name.setdefault(definition.name, {})[Version.parse(definition.version)] = (
            definition
        )

    def resolve(self, name: str, version_range: str) -> Definition:
        """The greatest version of ``name`` inside ``version_range``; raises ``TaskError``."""
        versions = self._by_name.get(name)
        if not versions:
            raise TaskError(f"sub-workflow '{name}' is not known", retryable=False)
        try:
            wanted = VersionRange.parse(version_range)
        except ValueError as exc:
            raise TaskError(str(exc), retryable=False) from None
        best = wanted.best(list(versions))
        if best is None:
            have = ", ".join(str(v) for v in sorted(versions))
            raise TaskError(
                f"no version of '{name}' matches {version_range} (have {have})", retryable=False
            )
        return versions[best]


class LocalLauncher:
    """Runs sub-workflows as child executions in this process."""

    def __init__(self, workflows: LocalWorkflows, on_event: EventSink | None = None) -> None:
        self.workflows = workflows
        self.on_event = on_event
        self.runner: NodeRunner | None = None
        self.children: list[ChildRef] = []
        """Every finished descendant, in the order they ended, with the parent that started it."""

    async def run_child(
        self,
        task: SubWorkflowTask,
        inputs: dict[str, Any],
        parent: ExecutionContext,
        attempt: NodeAttempt,
    ) -> Any:
        assert self.runner is not None
        if parent.depth + 1 > MAX_DEPTH:
            raise TaskError(f"sub-workflows nested deeper than {MAX_DEPTH} levels", retryable=False)
        definition = self.workflows.resolve(task.name, task.version)
        try:
            resolved = resolve_inputs(definition, inputs)
        except InputError as exc:
            raise TaskError(f"sub-workflow {definition.name}: {exc}", retryable=False) from None
        driver = ExecutionDriver(
            definition, resolved, self.runner, on_event=self.on_event, depth=parent.depth + 1
        )
        result = await driver.run()
        self.children.append(
            ChildRef(
                id=driver.id,
                workflow=result.workflow,
                version=result.version,
                status=result.status,
                parent=ParentRef(parent.id, attempt.node),
            )
        )
        if result.status is not ExecutionStatus.COMPLETED:
            error = result.error
            where = f"node {error.node}: " if error and error.node else ""
            raise TaskError(
                f"sub-workflow {definition.name}@{definition.version} ({driver.id}) "
                f"{result.status}: {where}{error.message if error else ''}",
                retryable=False,
            )
        return result.outputs


async def run_workflow(
    definition: Definition,
    inputs: dict[str, Any] | None = None,
    *,
    on_event: EventSink | None = None,
    workflows: LocalWorkflows | None = None,
    sandbox: LuaSandbox | None = None,
    execution_id: str | None = None,
    on_driver: Callable[[ExecutionDriver], None] | None = None,
    on_result: ResultSink | None = None,
    checkpoint: Sequence[NodeResult] = (),
) -> ExecutionResult:
    """Run ``definition`` to its end in this process and return its result.

    Raises ``InputError`` (before anything runs) when ``inputs`` do not match the declaration.
    ``on_driver`` receives the driver once it exists, e.g. to ``cancel()`` it on Ctrl-C;
    ``on_result`` every checkpoint record as it is accepted (``weir run --journal``);
    ``checkpoint`` records to resume from (a retry's reused records).
    """
    resolved = resolve_inputs(definition, inputs or {})
    own_sandbox = sandbox is None
    box = sandbox or LuaSandbox()
    launcher = LocalLauncher(workflows or LocalWorkflows([definition]), on_event)
    try:
        async with NodeRunner(sandbox=box, launcher=launcher) as runner:
            launcher.runner = runner
            driver = ExecutionDriver(
                definition,
                resolved,
                runner,
                on_event=on_event,
                on_result=on_result,
                checkpoint=checkpoint,
                execution_id=execution_id,
            )
            if on_driver is not None:
                on_driver(driver)
            result = await driver.run()
            return result.with_links(None, tuple(launcher.children))
    finally:
        if own_sandbox:
            box.close()
