"""Registry version rules: semver order, registration outcomes, major bumps that dependents
refuse, deprecation, deletion and range resolution."""

from __future__ import annotations

import itertools
import re

import pytest

from engine.definition.semver import Version
from orchestrator.errors import AlreadyExists, FailedPrecondition, NotFound, VersionConflict
from orchestrator.registry import Registry


def wf(name: str, version: str, *uses: tuple[str, str], body: str = "return {x = 1}") -> str:
    """A small definition: one Lua node, plus one sub-workflow node per ``(name, range)``."""
    lines = [
        "apiVersion: weir/v1",
        "kind: Workflow",
        f"name: {name}",
        f"version: {version}",
        "nodes:",
        f"  - {{id: a, lua: '{body}'}}",
    ]
    lines += [
        f'  - {{id: call{i}, depends_on: [a], workflow: {{name: {child}, version: "{spec}"}}}}'
        for i, (child, spec) in enumerate(uses)
    ]
    return "\n".join(lines) + "\n"


def registry_with(*sources: str) -> Registry:
    registry = Registry()
    for source in sources:
        registry.register(source)
    return registry


# --- semver order ----------------------------------------------------------------------------

ASCENDING = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.9.0",
    "1.10.0",
    "1.10.1",
    "2.0.0",
]


@pytest.mark.parametrize(("lower", "higher"), list(itertools.pairwise(ASCENDING)))
def test_semver_order(lower: str, higher: str) -> None:
    assert Version.parse(lower) < Version.parse(higher)
    registry = registry_with(wf("w", lower))
    _, created = registry.register(wf("w", higher))
    assert created
    with pytest.raises(VersionConflict, match=f"not greater than the latest, {higher}"):
        registry_with(wf("w", higher)).register(wf("w", lower))


def test_sorting_follows_semver_not_text() -> None:
    shuffled = sorted(ASCENDING, key=lambda v: v[::-1])
    assert [str(v) for v in sorted(Version.parse(v) for v in shuffled)] == ASCENDING


@pytest.mark.parametrize(
    ("a", "b"), [("1.0.0+build.1", "1.0.0+build.2"), ("1.0.0", "1.0.0+sha.abc")]
)
def test_build_metadata_is_ignored(a: str, b: str) -> None:
    assert Version.parse(a) == Version.parse(b)
    assert not Version.parse(a) < Version.parse(b)


# --- registration outcomes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "new", "outcome", "message"),
    [
        ([], wf("w", "1.0.0"), "created", ""),
        ([wf("w", "1.0.0")], wf("w", "1.0.1"), "created", ""),
        ([wf("w", "1.9.0")], wf("w", "1.10.0"), "created", ""),
        ([wf("w", "1.0.0")], wf("w", "1.0.0"), "unchanged", ""),
        (
            [wf("w", "1.0.0")],
            wf("w", "1.0.0", body="return {x = 2}"),
            AlreadyExists,
            "w version 1.0.0 is already registered with a different definition",
        ),
        (
            [wf("w", "1.0.0")],
            wf("w", "1.0.0+build.7"),  # the same version: build metadata is ignored
            AlreadyExists,
            "already registered",
        ),
        (
            [wf("w", "1.0.0"), wf("w", "1.2.0")],
            wf("w", "1.1.0"),
            VersionConflict,
            "w: version 1.1.0 is not greater than the latest, 1.2.0",
        ),
        (
            [wf("w", "1.0.0")],
            wf("w", "1.0.0-rc.1"),  # equal numbers, but a pre-release sorts first
            VersionConflict,
            "not greater than the latest, 1.0.0",
        ),
        ([wf("w", "1.0.0-rc.1")], wf("w", "1.0.0"), "created", ""),
        ([wf("other", "5.0.0")], wf("w", "0.1.0"), "created", ""),  # versions are per name
    ],
    ids=[
        "first",
        "patch",
        "numeric-order",
        "same-identical",
        "same-different",
        "build-metadata",
        "lower",
        "prerelease-of-latest",
        "release-after-prerelease",
        "other-name",
    ],
)
def test_registration(registered: list[str], new: str, outcome: object, message: str) -> None:
    registry = registry_with(*registered)
    before = {n: len(registry.versions(n)) for n in registry.names()}
    if isinstance(outcome, type):
        with pytest.raises(outcome, match=message):
            registry.prepare(new)
        assert {n: len(registry.versions(n)) for n in registry.names()} == before
        return
    registration = registry.prepare(new)
    assert registration.created == (outcome == "created")
    if outcome == "unchanged":
        assert registration.version is registry.get("w")
        return
    # prepare changes nothing until add
    assert {n: len(registry.versions(n)) for n in registry.names()} == before
    registry.add(registration.version)
    assert registry.get("w") is registration.version


# --- major bumps and dependents --------------------------------------------------------------

Step = tuple[str, str]  # (source, "ok" or the text of the FailedPrecondition)

CHILD_1 = wf("child", "1.0.0")
PARENT = wf("parent", "1.0.0", ("child", "^1.0"))

MAJOR_BUMPS: dict[str, list[Step]] = {
    "refused, dependency order": [
        (CHILD_1, "ok"),
        (PARENT, "ok"),
        (
            wf("child", "2.0.0"),
            re.escape(
                "workflow child: major version 2.0.0 (latest 1.0.0) is refused while these "
                "workflows depend on child with a range that does not admit it: "
                "parent@1.0.0 (uses ^1.0); register versions of them whose range admits 2.0.0 "
                "first"
            ),
        ),
    ],
    "refused, parent registered first": [
        (PARENT, "ok"),
        (CHILD_1, "ok"),
        (wf("child", "2.0.0"), r"parent@1\.0\.0 \(uses \^1\.0\)"),
    ],
    "refused, naming every dependent": [
        (CHILD_1, "ok"),
        (PARENT, "ok"),
        (wf("other", "3.1.0", ("child", "~1.0.0"), ("unrelated", "*")), "ok"),
        (
            wf("child", "2.0.0"),
            r"other@3\.1\.0 \(uses ~1\.0\.0\), parent@1\.0\.0 \(uses \^1\.0\)",
        ),
    ],
    "refused, a pre-release of the next major": [
        (CHILD_1, "ok"),
        (PARENT, "ok"),
        (wf("child", "2.0.0-rc.1"), r"parent@1\.0\.0 \(uses \^1\.0\)"),
    ],
    "refused, 0.x to 1.0.0": [
        (wf("child", "0.1.0"), "ok"),
        (wf("parent", "1.0.0", ("child", "^0.1")), "ok"),
        (wf("child", "0.2.0"), "ok"),  # a minor bump in semver terms: accepted
        (wf("child", "1.0.0"), r"parent@1\.0\.0 \(uses \^0\.1\)"),
    ],
    "minor and patch bumps accepted": [
        (CHILD_1, "ok"),
        (PARENT, "ok"),
        (wf("child", "1.0.1"), "ok"),
        (wf("child", "1.1.0"), "ok"),
        (wf("child", "1.2.0-beta.1"), "ok"),
    ],
    "range * admits the major": [
        (CHILD_1, "ok"),
        (wf("parent", "1.0.0", ("child", "*")), "ok"),
        (wf("child", "2.0.0"), "ok"),
    ],
    "range >=1.0.0 admits the major": [
        (CHILD_1, "ok"),
        (wf("parent", "1.0.0", ("child", ">=1.0.0")), "ok"),
        (wf("child", "2.0.0"), "ok"),
    ],
    "dependent dropped the reference": [
        (CHILD_1, "ok"),
        (PARENT, "ok"),
        (wf("parent", "1.1.0"), "ok"),
        (wf("child", "2.0.0"), "ok"),
    ],
    "dependent moved to the new major first": [
        (CHILD_1, "ok"),
        (PARENT, "ok"),
        (wf("parent", "2.0.0", ("child", "^2.0")), "ok"),
        (wf("child", "2.0.0"), "ok"),
    ],
    "only the dependent's latest version counts": [
        (CHILD_1, "ok"),
        (wf("parent", "1.0.0"), "ok"),
        (wf("parent", "1.1.0", ("child", "^1.0")), "ok"),
        (wf("child", "2.0.0"), r"parent@1\.1\.0 \(uses \^1\.0\)"),
    ],
    "self-reference is not a dependent": [
        (wf("tree", "1.0.0", ("tree", "^1.0")), "ok"),
        (wf("tree", "2.0.0", ("tree", "^2.0")), "ok"),
    ],
    "first version of a name is not a bump": [
        (PARENT, "ok"),
        (wf("child", "2.0.0"), "ok"),
    ],
}


@pytest.mark.parametrize("steps", list(MAJOR_BUMPS.values()), ids=list(MAJOR_BUMPS))
def test_major_bump(steps: list[Step]) -> None:
    registry = Registry()
    for source, expected in steps:
        if expected == "ok":
            assert registry.register(source)[1]
        else:
            before = [v.version for v in registry.versions("child")]
            with pytest.raises(FailedPrecondition, match=expected):
                registry.register(source)
            assert [v.version for v in registry.versions("child")] == before


def test_dependents_and_uses() -> None:
    registry = registry_with(
        CHILD_1,
        wf("zeta", "1.0.0", ("child", "^1.0"), ("child", "^1.0"), ("child", "1.0.0")),
        wf("alpha", "1.0.0", ("child", "*")),
        wf("child", "1.1.0", ("child", "^1.0")),
    )
    zeta = registry.get("zeta")
    assert zeta.uses == (("child", "1.0.0"), ("child", "^1.0"))
    assert [(d.name, spec) for d, spec in registry.dependents("child")] == [
        ("alpha", "*"),
        ("zeta", "1.0.0"),
        ("zeta", "^1.0"),
    ]
    assert registry.dependents("alpha") == []


def test_load_checks_no_rule_and_keeps_the_stored_state() -> None:
    registry = registry_with(CHILD_1, PARENT)
    loaded = registry.load(wf("child", "2.0.0"), registered_at=12.5, deprecated=True)
    registry.load(wf("child", "0.9.0"), registered_at=1.0, deprecated=False)
    assert loaded.registered_at == 12.5
    assert loaded.deprecated
    assert [v.version for v in registry.versions("child")] == ["0.9.0", "1.0.0", "2.0.0"]
    assert registry.get("child").version == "1.0.0"  # 2.0.0 is deprecated


# --- deprecation -----------------------------------------------------------------------------


def test_deprecation_steers_get_and_resolve() -> None:
    registry = registry_with(wf("w", "1.0.0"), wf("w", "1.1.0"), wf("w", "2.0.0"))
    latest = registry.get("w")
    assert registry.deprecate("w", "2.0.0", True) is latest  # in place, same object
    assert latest.deprecated
    assert registry.get("w").version == "1.1.0"
    assert registry.get("w", "2.0.0") is latest  # an exact lookup still finds it
    assert registry.resolve("w", "*").version == "1.1.0"
    registry.deprecate("w", "1.1.0", True)
    assert registry.resolve("w", "^1.0").version == "1.0.0"
    registry.deprecate("w", "1.0.0", True)
    assert registry.get("w").version == "2.0.0"  # all deprecated: the greatest
    with pytest.raises(
        NotFound, match=r"w: every version matching \^1\.0 is deprecated \(1\.0\.0, 1\.1\.0\)"
    ):
        registry.resolve("w", "^1.0")
    registry.deprecate("w", "1.1.0", False)
    assert not registry.get("w", "1.1.0").deprecated
    assert registry.get("w").version == "1.1.0"
    with pytest.raises(NotFound, match=r"has no version 3\.0\.0"):
        registry.deprecate("w", "3.0.0", True)


# --- resolution ------------------------------------------------------------------------------

RESOLVABLE = ["1.0.0", "1.2.0", "1.2.5", "1.3.0-beta.1", "2.0.0", "2.1.0"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("^1.0", "1.2.5"),  # pre-releases only match an exact pin
        ("^1.2.1", "1.2.5"),
        ("~1.2", "1.2.5"),
        ("~1.2.0", "1.2.5"),
        ("1.2.0", "1.2.0"),
        ("1.3.0-beta.1", "1.3.0-beta.1"),
        ("*", "2.1.0"),
        ("^2", "2.1.0"),
        ("1.x", "1.2.5"),
        (">=1.0.0 <1.2.0", "1.0.0"),
        ("^3.0", NotFound("w has no version matching ^3.0 (has 1.0.0, 1.2.0")),
        ("1.1.0", NotFound("no version matching 1.1.0")),
        ("not-a-range", NotFound("w: invalid version range 'not-a-range'")),
    ],
)
def test_resolve(spec: str, expected: str | NotFound) -> None:
    registry = registry_with(*(wf("w", v) for v in RESOLVABLE))
    if isinstance(expected, NotFound):
        with pytest.raises(NotFound) as err:
            registry.resolve("w", spec)
        assert str(expected) in str(err.value)
    else:
        assert registry.resolve("w", spec).version == expected


def test_resolve_unknown_name() -> None:
    with pytest.raises(NotFound, match=r"'nope' is not registered \(registered: w\)"):
        registry_with(wf("w", "1.0.0")).resolve("nope", "*")


# --- deletion --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deprecated", "version", "running", "outcome"),
    [
        ([], "1.1.0", 2, "2 running executions are pinned to it"),
        ([], "1.0.0", 1, "1 running execution is pinned to it"),
        ([], "1.1.0", 0, r"references resolve to it: parent@1\.0\.0 \(uses \^1\.0\)"),
        ([], "1.0.0", 0, None),  # ^1.0 resolves to 1.1.0, not to 1.0.0
        ([], "2.0.0", 0, None),  # nobody's range admits it
        (["1.1.0"], "1.1.0", 0, None),  # deprecated: ^1.0 resolves to 1.0.0 now...
        (["1.1.0"], "1.0.0", 0, r"parent@1\.0\.0"),  # ...which is therefore kept
        ([], "9.9.9", 0, NotFound),
    ],
)
def test_check_delete(
    deprecated: list[str], version: str, running: int, outcome: str | type | None
) -> None:
    registry = Registry()
    registry.register(wf("child", "1.0.0"))
    registry.register(wf("child", "1.1.0"))
    registry.register(wf("parent", "1.0.0", ("child", "^1.0")))
    registry.load(wf("child", "2.0.0"), registered_at=0.0, deprecated=False)  # no rule on load
    for v in deprecated:
        registry.deprecate("child", v, True)
    if outcome is None:
        registry.check_delete("child", version, running=running)
        registry.remove("child", version)
        assert version not in [v.version for v in registry.versions("child")]
    elif outcome is NotFound:
        with pytest.raises(NotFound):
            registry.check_delete("child", version, running=running)
    else:
        assert isinstance(outcome, str)
        with pytest.raises(FailedPrecondition, match=outcome):
            registry.check_delete("child", version, running=running)


def test_removing_the_last_version_drops_the_name() -> None:
    registry = registry_with(wf("w", "1.0.0"), wf("v", "1.0.0"))
    registry.remove("w", "1.0.0")
    assert registry.names() == ["v"]
    with pytest.raises(NotFound, match="'w' is not registered"):
        registry.get("w")
    with pytest.raises(NotFound):
        registry.remove("w", "1.0.0")
