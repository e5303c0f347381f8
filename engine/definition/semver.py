"""Semantic versions (semver.org 2.0.0): parsing and ordering, pre-releases included.

``Version.parse("1.10.0") > Version.parse("1.9.0")``; ``1.0.0-alpha < 1.0.0-alpha.1 <
1.0.0-beta < 1.0.0``; build metadata is kept but ignored when comparing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A parsed semantic version; compare with ``<``, ``==``, ``sorted``."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``text``; raise ``ValueError`` saying what a semantic version looks like."""
        match = _SEMVER.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"invalid semantic version {text!r}: expected MAJOR.MINOR.PATCH like 1.2.0"
            )
        major, minor, patch, pre, build = match.groups()
        return cls(
            int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else (), build or ""
        )

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its pre-releases; numeric identifiers sort before
        # alphanumeric ones and compare as numbers.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


_PARTIAL = re.compile(r"^v?(\d+)(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:-([0-9A-Za-z.-]+))?$")


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A version range as sub-workflow references write it.

    ``*`` (any release), ``1.2.3`` (exactly), ``^1.2`` / ``^1.2.3`` (same major; for 0.x, same
    minor), ``~1.2`` / ``~1.2.3`` (same minor), ``1.x``, or comparators joined by spaces
    (``>=1.2.0 <2.0.0``). Pre-releases match only an exact pin, as in npm.
    """

    text: str
    bounds: tuple[tuple[str, Version], ...]

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """Parse ``text``; raise ``ValueError`` naming the accepted forms."""
        source = text.strip()
        bounds: list[tuple[str, Version]] = []
        for part in source.split() or ["*"]:
            bounds.extend(_bounds(part, text))
        return cls(source or "*", tuple(bounds))

    def matches(self, version: Version) -> bool:
        exact = len(self.bounds) == 1 and self.bounds[0][0] == "=="
        if version.prerelease and not exact:
            return False
        return all(_compare(version, op, bound) for op, bound in self.bounds)

    def best(self, versions: list[Version]) -> Version | None:
        """The greatest of ``versions`` inside the range."""
        matching = [v for v in versions if self.matches(v)]
        return max(matching) if matching else None

    def __str__(self) -> str:
        return self.text


def _bounds(part: str, whole: str) -> list[tuple[str, Version]]:
    if part in ("*", "x", "X"):
        return []
    for op in (">=", "<=", ">", "<", "="):
        if part.startswith(op):
            return [(op if op != "=" else "==", Version.parse(part[len(op) :]))]
    prefix = part[0] if part[0] in "^~" else ""
    match = _PARTIAL.match(part[len(prefix) :])
    if match is None:
        raise ValueError(
            f"invalid version range {whole!r}: expected *, 1.2.3, ^1.2, ~1.2.3 or >=1.0.0 <2.0.0"
        )
    major = int(match.group(1))
    minor = None if match.group(2) in (None, "x", "X", "*") else int(match.group(2))
    patch = None if match.group(3) in (None, "x", "X", "*") else int(match.group(3))
    pre = tuple(match.group(4).split(".")) if match.group(4) else ()
    low = Version(major, minor or 0, patch or 0, pre)
    if not prefix and minor is not None and patch is not None:
        return [("==", low)]
    if prefix == "^" and minor is not None:
        if major > 0:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, patch + 1)
    elif minor is None:
        high = Version(major + 1, 0, 0)
    else:  # ~1.2, ~1.2.3, 1.2, 1.2.x
        high = Version(major, minor + 1, 0)
    return [(">=", low), ("<", high)]


def _compare(version: Version, op: str, bound: Version) -> bool:
    if op == "==":
        return version == bound
    if op == ">=":
        return version >= bound
    if op == ">":
        return version > bound
    if op == "<=":
        return version <= bound
    return version < bound
