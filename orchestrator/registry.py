"""Workflow versions known to the orchestrator, in memory (the store of issue 4 persists them).

Rules enforced here: names and versions come from the validated definition; the same version
registered again with an identical definition is a no-op and with a different one an error; a new
version must be greater (semver, pre-releases included) than the latest one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from engine.definition.model import Definition
from engine.definition.parser import loads
from engine.definition.semver import Version
from engine.lua import LuaSandbox
from engine.server.codec import canonical_definition
from orchestrator.errors import AlreadyExists, NotFound, VersionConflict


@dataclass(frozen=True, slots=True)
class WorkflowVersion:
    """One registered version: the source as submitted, the parsed form, the engines' snapshot."""

    definition: Definition
    source: str
    snapshot: bytes
    digest: str
    registered_at: float
    semver: Version = field(compare=False)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def version(self) -> str:
        return self.definition.version


class Registry:
    def __init__(self, sandbox: LuaSandbox | None = None) -> None:
        self._sandbox = sandbox
        self._versions: dict[str, dict[Version, WorkflowVersion]] = {}

    def register(self, source: str, *, origin: str = "<request>") -> tuple[WorkflowVersion, bool]:
        """Validate and add ``source``; return the version and whether it is new.

        Raises ``DefinitionError`` (invalid), ``AlreadyExists`` or ``VersionConflict``.
        """
        definition = loads(source, source=origin, sandbox=self._sandbox)
        snapshot, digest = canonical_definition(dict(definition.document))
        semver = Version.parse(definition.version)
        versions = self._versions.setdefault(definition.name, {})
        existing = versions.get(semver)
        if existing is not None:
            if existing.digest == digest:
                return existing, False
            raise AlreadyExists(
                f"workflow {definition.name} version {definition.version} is already registered "
                "with a different definition; register it under a new version"
            )
        if versions:
            latest = max(versions)
            if semver < latest:
                raise VersionConflict(
                    f"workflow {definition.name}: version {definition.version} is not greater "
                    f"than the latest, {latest}"
                )
        version = WorkflowVersion(definition, source, snapshot, digest, time.time(), semver)
        versions[semver] = version
        return version, True

    def get(self, name: str, version: str = "") -> WorkflowVersion:
        """The exact ``version`` of ``name``, or its latest when ``version`` is empty."""
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise NotFound(f"workflow {name!r} is not registered (registered: {known})")
        if not version:
            return versions[max(versions)]
        try:
            wanted = Version.parse(version)
        except ValueError as exc:
            raise NotFound(f"workflow {name}: {exc}") from None
        found = versions.get(wanted)
        if found is None:
            have = ", ".join(str(v) for v in sorted(versions))
            raise NotFound(f"workflow {name} has no version {version} (has {have})")
        return found

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[WorkflowVersion]:
        """Every version of ``name``, ascending."""
        versions = self._versions.get(name, {})
        return [versions[v] for v in sorted(versions)]
