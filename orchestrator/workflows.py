"""``WorkflowService``: registering, reading, deprecating, deleting and comparing versions.

The rules (semver order, major bumps and dependents, what may be deleted) are the
``Registry``'s; this service persists each change before the registry applies it and announces it
(``workflow.registered|deprecated|undeprecated|deleted``).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.definition.diff import DefinitionDiff, diff_definitions
from orchestrator.errors import NotFound
from orchestrator.executions.table import ExecutionTable
from orchestrator.monitor import Monitor
from orchestrator.registry import Registry, WorkflowVersion
from orchestrator.store import Store, WorkflowRow


@dataclass(frozen=True, slots=True)
class WorkflowSummary:
    name: str
    latest_version: str
    versions: tuple[str, ...]
    description: str


class WorkflowService:
    """The workflow operations both APIs call."""

    def __init__(
        self, registry: Registry, store: Store, monitor: Monitor, table: ExecutionTable
    ) -> None:
        self._registry = registry
        self._store = store
        self._monitor = monitor
        self._table = table

    async def register(self, source: str) -> tuple[WorkflowVersion, bool]:
        """Validate, persist and add a version; ``created`` is False for an identical one."""
        registration = self._registry.prepare(source)
        version = registration.version
        if not registration.created:
            return version, False
        await self._store.save_workflow(
            WorkflowRow(
                name=version.name,
                version=version.version,
                source=version.source,
                document_json=version.snapshot,
                digest=version.digest,
                registered_at=version.registered_at,
            )
        )
        self._registry.add(version)
        self._monitor.publish(
            "workflow.registered",
            workflow=version.name,
            version=version.version,
            message=f"{version.name} {version.version} registered",
        )
        return version, True

    async def deprecate(self, name: str, version: str, deprecated: bool = True) -> WorkflowVersion:
        wf = self._registry.get(name, version)
        await self._store.set_deprecated(wf.name, wf.version, deprecated)
        wf = self._registry.deprecate(name, version, deprecated)
        self._monitor.publish(
            "workflow.deprecated" if deprecated else "workflow.undeprecated",
            workflow=wf.name,
            version=wf.version,
            message=f"{wf.name} {wf.version} {'deprecated' if deprecated else 'in use again'}",
        )
        return wf

    async def delete(self, name: str, version: str) -> None:
        """Raises FailedPrecondition while a running execution or a dependent uses it."""
        wf = self._registry.get(name, version)
        self._registry.check_delete(name, version, running=self._table.running_on(wf))
        await self._store.delete_workflow(wf.name, wf.version)
        self._registry.remove(name, version)
        self._monitor.publish(
            "workflow.deleted",
            workflow=wf.name,
            version=wf.version,
            message=f"{wf.name} {wf.version} deleted",
        )

    def get(self, name: str, version: str = "") -> WorkflowVersion:
        """That version (the latest one when empty); raises NotFound."""
        return self._registry.get(name, version)

    def used_by(self, wf: WorkflowVersion) -> list[tuple[WorkflowVersion, str]]:
        """The versions whose sub-workflow ranges admit ``wf``, with the range."""
        return self._registry.used_by(wf)

    def summaries(self) -> list[WorkflowSummary]:
        """Every registered workflow name with its versions, oldest first."""
        out = []
        for name in self._registry.names():
            versions = self._registry.versions(name)
            out.append(
                WorkflowSummary(
                    name=name,
                    latest_version=versions[-1].version,
                    versions=tuple(v.version for v in versions),
                    description=versions[-1].definition.description or "",
                )
            )
        return out

    def versions(self, name: str) -> list[WorkflowVersion]:
        """Raises NotFound for a name with no version."""
        versions = self._registry.versions(name)
        if not versions:
            raise NotFound(f"workflow {name!r} is not registered")
        return versions

    def diff(self, name: str, old: str, new: str) -> DefinitionDiff:
        return diff_definitions(
            self._registry.get(name, old).definition, self._registry.get(name, new).definition
        )
