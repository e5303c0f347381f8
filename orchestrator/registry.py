"""Workflow versions known to the orchestrator, in memory; the store persists them.

Versions are semantic versions (``engine.definition.semver``), compared by the semver 2.0.0
rules, pre-releases included and build metadata ignored. ``prepare`` checks a new version
against these rules, in this order, without changing anything (the core persists the version,
then calls ``add``):

1. the same name and version with an identical definition (same digest): a no-op,
   ``Registration(existing, created=False)``;
2. the same version with a different definition: ``AlreadyExists``;
3. a version not greater than the latest one of that name: ``VersionConflict``, naming the latest;
4. a major bump (``2.0.0`` after ``1.x``, ``1.0.0`` after ``0.x``) while the latest version of
   another workflow references this one (a ``workflow: {name, version: RANGE}`` node) with a
   range that does not admit the new version: ``FailedPrecondition``, naming every such
   dependent as ``name@version (uses RANGE)``. Minor and patch bumps, and ranges that admit the
   new major (``*``, ``>=1.0.0``), are always accepted; a workflow is not its own dependent.

Dependencies are derived from the current latest version of every workflow each time they are
needed, never recorded at registration, so the order of registration does not matter: a parent
may be registered before its child exists and still blocks the child's later major bump, and a
dependent whose newest version no longer references the child stops blocking it.

``get(name)`` and ``resolve(name, range)`` pick the greatest version that is not deprecated;
``get(name)`` falls back to the greatest version when every one is deprecated (the core then
refuses to start it). Deleting a version (``check_delete``) is refused while executions run on
it or while a dependent's range currently resolves to it. ``load`` re-adds stored versions at
startup without checking the ordering or dependency rules: the store is the truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.definition.model import Definition, SubWorkflowTask
from engine.definition.parser import loads
from engine.definition.semver import Version, VersionRange
from engine.lua import LuaSandbox
from engine.server.codec import canonical_definition
from orchestrator.errors import AlreadyExists, FailedPrecondition, NotFound, VersionConflict


@dataclass(slots=True, eq=False)
class WorkflowVersion:
    """One registered version: the source as submitted, the parsed form, the engines' snapshot.

    Compared by identity. ``deprecated`` is the only mutable field (``Registry.deprecate``);
    ``uses`` lists the sub-workflows the definition references, as sorted unique
    ``(name, range)`` pairs.
    """

    definition: Definition
    source: str
    snapshot: bytes
    digest: str
    registered_at: float
    semver: Version
    deprecated: bool = False
    uses: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def version(self) -> str:
        return self.definition.version


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of ``Registry.prepare``: the version to add, or the identical one already in."""

    version: WorkflowVersion
    created: bool


def uses_of(definition: Definition) -> tuple[tuple[str, str], ...]:
    """The ``(name, range)`` pairs of the sub-workflow nodes of ``definition``, sorted, unique."""
    return tuple(
        sorted(
            {
                (node.executor.name, node.executor.version)
                for node in definition.nodes
                if isinstance(node.executor, SubWorkflowTask)
            }
        )
    )


def _admits(range_text: str, version: Version) -> bool:
    try:
        return VersionRange.parse(range_text).matches(version)
    except ValueError:
        return False  # an unreadable range admits nothing


def _listing(versions: list[WorkflowVersion]) -> str:
    return ", ".join(v.version + (" (deprecated)" if v.deprecated else "") for v in versions)


class Registry:
    def __init__(self, sandbox: LuaSandbox | None = None) -> None:
        self._sandbox = sandbox
        self._versions: dict[str, dict[Version, WorkflowVersion]] = {}

    # --- registration ------------------------------------------------------------------------

    def prepare(self, source: str, *, origin: str = "<request>") -> Registration:
        """Validate ``source`` and check the version rules; change nothing.

        Raises ``DefinitionError`` (invalid), ``AlreadyExists``, ``VersionConflict`` or
        ``FailedPrecondition`` (a major bump that dependents' ranges do not admit).
        """
        version = self._build(source, origin, registered_at=time.time(), deprecated=False)
        name = version.name
        versions = self._versions.get(name, {})
        existing = versions.get(version.semver)
        if existing is not None:
            if existing.digest == version.digest:
                return Registration(existing, created=False)
            raise AlreadyExists(
                f"workflow {name} version {version.version} is already registered "
                "with a different definition; register it under a new version"
            )
        if versions:
            latest = max(versions)
            if version.semver < latest:
                raise VersionConflict(
                    f"workflow {name}: version {version.version} is not greater "
                    f"than the latest, {versions[latest].version}"
                )
            if version.semver.major > latest.major:
                self._check_major_bump(version, versions[latest])
        return Registration(version, created=True)

    def _check_major_bump(self, new: WorkflowVersion, latest: WorkflowVersion) -> None:
        blocking = [
            f"{d.name}@{d.version} (uses {spec})"
            for d, spec in self.dependents(new.name)
            if not _admits(spec, new.semver)
        ]
        if blocking:
            raise FailedPrecondition(
                f"workflow {new.name}: major version {new.version} (latest {latest.version}) is "
                f"refused while these workflows depend on {new.name} with a range that does not "
                f"admit it: {', '.join(blocking)}; register versions of them whose range "
                f"admits {new.version} first"
            )

    def add(self, version: WorkflowVersion) -> None:
        """Insert a version that ``prepare`` accepted (and the core persisted)."""
        self._versions.setdefault(version.name, {})[version.semver] = version

    def register(self, source: str, *, origin: str = "<request>") -> tuple[WorkflowVersion, bool]:
        """``prepare`` and ``add``: return the version and whether it is new."""
        registration = self.prepare(source, origin=origin)
        if registration.created:
            self.add(registration.version)
        return registration.version, registration.created

    def load(self, source: str, *, registered_at: float, deprecated: bool) -> WorkflowVersion:
        """Re-add a stored version at startup; no ordering or dependency rule is checked."""
        version = self._build(source, "<store>", registered_at=registered_at, deprecated=deprecated)
        self.add(version)
        return version

    def _build(
        self, source: str, origin: str, *, registered_at: float, deprecated: bool
    ) -> WorkflowVersion:
        definition = loads(source, source=origin, sandbox=self._sandbox)
        snapshot, digest = canonical_definition(dict(definition.document))
        return WorkflowVersion(
            definition=definition,
            source=source,
            snapshot=snapshot,
            digest=digest,
            registered_at=registered_at,
            semver=Version.parse(definition.version),
            deprecated=deprecated,
            uses=uses_of(definition),
        )

    # --- lookups -----------------------------------------------------------------------------

    def get(self, name: str, version: str = "") -> WorkflowVersion:
        """The exact ``version`` of ``name``; with ``""`` the greatest one not deprecated.

        When every version is deprecated, ``get(name)`` returns the greatest one anyway (the
        caller decides what a deprecated version allows).
        """
        versions = self._named(name)
        if not version:
            ordered = sorted(versions)
            startable = [v for v in ordered if not versions[v].deprecated]
            return versions[(startable or ordered)[-1]]
        try:
            wanted = Version.parse(version)
        except ValueError as exc:
            raise NotFound(f"workflow {name}: {exc}") from None
        found = versions.get(wanted)
        if found is None:
            have = ", ".join(str(v) for v in sorted(versions))
            raise NotFound(f"workflow {name} has no version {version} (has {have})")
        return found

    def resolve(self, name: str, range_text: str) -> WorkflowVersion:
        """The greatest version of ``name`` inside ``range_text`` that is not deprecated."""
        versions = self._named(name)
        try:
            wanted = VersionRange.parse(range_text)
        except ValueError as exc:
            raise NotFound(f"workflow {name}: {exc}") from None
        found = self._best(name, wanted)
        if found is not None:
            return found
        matching = [v for v in self.versions(name) if wanted.matches(v.semver)]
        if matching:
            raise NotFound(
                f"workflow {name}: every version matching {wanted} is deprecated "
                f"({', '.join(v.version for v in matching)})"
            )
        raise NotFound(
            f"workflow {name} has no version matching {wanted} "
            f"(has {_listing([versions[v] for v in sorted(versions)])})"
        )

    def _best(self, name: str, wanted: VersionRange) -> WorkflowVersion | None:
        candidates = [v for v in self.versions(name) if not v.deprecated]
        best = wanted.best([v.semver for v in candidates])
        return None if best is None else self._versions[name][best]

    def _named(self, name: str) -> dict[Version, WorkflowVersion]:
        versions = self._versions.get(name)
        if not versions:
            known = ", ".join(sorted(self._versions)) or "none"
            raise NotFound(f"workflow {name!r} is not registered (registered: {known})")
        return versions

    def _exact(self, name: str, version: str) -> WorkflowVersion:
        if not version:
            raise NotFound(f"workflow {name}: a version is required")
        return self.get(name, version)

    def names(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, name: str) -> list[WorkflowVersion]:
        """Every version of ``name``, ascending."""
        versions = self._versions.get(name, {})
        return [versions[v] for v in sorted(versions)]

    def dependents(self, name: str) -> list[tuple[WorkflowVersion, str]]:
        """Other workflows' latest versions that reference ``name``, with their range, by name."""
        found: list[tuple[WorkflowVersion, str]] = []
        for other in sorted(self._versions):
            if other == name or not self._versions[other]:
                continue
            latest = self._versions[other][max(self._versions[other])]
            found.extend((latest, spec) for used, spec in latest.uses if used == name)
        return found

    def used_by(self, version: WorkflowVersion) -> list[tuple[WorkflowVersion, str]]:
        """The ``dependents`` of its name whose range admits ``version``."""
        return [
            (d, spec) for d, spec in self.dependents(version.name) if _admits(spec, version.semver)
        ]

    # --- lifecycle ---------------------------------------------------------------------------

    def deprecate(self, name: str, version: str, deprecated: bool) -> WorkflowVersion:
        """Set or clear the deprecated flag in place; return the version."""
        found = self._exact(name, version)
        found.deprecated = deprecated
        return found

    def check_delete(self, name: str, version: str, *, running: int) -> None:
        """Raise ``FailedPrecondition`` while ``version`` is in use; ``NotFound`` if unknown."""
        found = self._exact(name, version)
        if running > 0:
            raise FailedPrecondition(
                f"workflow {name} version {found.version} cannot be deleted: {running} "
                f"running execution{'s' if running != 1 else ''} "
                f"{'are' if running != 1 else 'is'} pinned to it"
            )
        users = []
        for dependent, spec in self.dependents(name):
            try:
                resolved = self._best(name, VersionRange.parse(spec))
            except ValueError:
                continue
            if resolved is found:
                users.append(f"{dependent.name}@{dependent.version} (uses {spec})")
        if users:
            raise FailedPrecondition(
                f"workflow {name} version {found.version} cannot be deleted: sub-workflow "
                f"references resolve to it: {', '.join(users)}"
            )

    def remove(self, name: str, version: str) -> None:
        """Delete ``version`` of ``name``; the name goes when its last version does."""
        found = self._exact(name, version)
        versions = self._versions[name]
        del versions[found.semver]
        if not versions:
            del self._versions[name]
