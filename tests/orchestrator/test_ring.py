"""Placement (orchestrator.ring): key movement, evenness, bounded load, round robin, properties."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from uhashring import HashRing

from orchestrator.ring import VNODES, Balancer, ConsistentHash, RoundRobin, make_balancer

KEYS = [f"exec-{i:08x}" for i in range(10_000)]
KINDS: list[Literal["consistent-hash", "round-robin"]] = ["consistent-hash", "round-robin"]


def names(n: int) -> list[str]:
    return [f"engine-{i}" for i in range(n)]


def owners(ring: ConsistentHash) -> list[str | None]:
    return [ring.preferred(key) for key in KEYS]


def room_except(*full: str) -> Callable[[str], bool]:
    return lambda engine: engine not in full


def never(_: str) -> bool:
    return False


def always(_: str) -> bool:
    return True


# -- consistent hash: movement and evenness ------------------------------------------------------


@pytest.mark.parametrize("n", range(3, 11))
def test_adding_an_engine_moves_about_one_in_n_plus_one_keys_all_to_it(n: int) -> None:
    ring = ConsistentHash(names(n))
    before = owners(ring)
    ring.add("engine-new")
    after = owners(ring)

    moved = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    fair = 1 / (n + 1)
    assert 0.5 * fair <= len(moved) / len(KEYS) <= 1.6 * fair
    assert {a for _, a in moved} == {"engine-new"}


@pytest.mark.parametrize("n", range(3, 11))
def test_removing_an_engine_moves_only_its_keys(n: int) -> None:
    ring = ConsistentHash(names(n))
    gone = f"engine-{n // 2}"
    before = owners(ring)
    ring.remove(gone)
    after = owners(ring)

    moved = {i for i, (b, a) in enumerate(zip(before, after, strict=True)) if a != b}
    assert moved == {i for i, b in enumerate(before) if b == gone}
    assert gone not in after


@pytest.mark.parametrize("n", [3, 4, 5, 7, 10])
def test_each_engine_owns_a_fair_share(n: int) -> None:
    counts = Counter(owners(ConsistentHash(names(n))))
    assert set(counts) == set(names(n))
    for engine, count in counts.items():
        assert 0.6 / n <= count / len(KEYS) <= 1.5 / n, engine


def test_owners_do_not_depend_on_insertion_order() -> None:
    forward = ConsistentHash(names(6))
    backward = ConsistentHash()
    for engine in reversed(names(6)):
        backward.add(engine)
    assert owners(forward) == owners(backward)


def test_matches_uhashring() -> None:
    ring = ConsistentHash(names(7))
    reference = HashRing(nodes=names(7), vnodes=VNODES)
    for key in KEYS[:500]:
        assert ring.preferred(key) == reference.get_node(key)
        assert list(ring.walk(key)) == [node["nodename"] for node in reference.range(key)]


# -- consistent hash: bounded load ---------------------------------------------------------------


@pytest.mark.parametrize("full_count", [0, 1, 2, 4])
def test_full_engines_pass_to_the_next_on_the_ring(full_count: int) -> None:
    ring = ConsistentHash(names(5))
    for key in KEYS[:200]:
        walk = ring.walk(key)
        has_room = room_except(*walk[:full_count])
        assert ring.choose(key, has_room) == walk[full_count]
        assert ring.choose(key, has_room) == walk[full_count]  # same key, same fullness


@pytest.mark.parametrize("n", [3, 5, 10])
def test_a_full_engines_keys_spread_over_all_the_others(n: int) -> None:
    # Each vnode of the full engine has its own successor, so no one neighbour takes its load.
    ring = ConsistentHash(names(n))
    overflow = Counter(
        ring.choose(key, room_except("engine-0"))
        for key in KEYS
        if ring.preferred(key) == "engine-0"
    )
    assert set(overflow) == set(names(n)) - {"engine-0"}
    total = overflow.total()
    for engine, count in overflow.items():
        assert 0.6 / (n - 1) <= count / total <= 1.5 / (n - 1), engine


def test_choice_is_the_same_on_a_ring_built_elsewhere() -> None:
    # Two orchestrators with the same engines agree, whatever order they learnt them in.
    one = ConsistentHash(names(5))
    other = ConsistentHash(reversed(names(5)))
    has_room = room_except("engine-1", "engine-3")
    assert [one.choose(k, has_room) for k in KEYS[:500]] == [
        other.choose(k, has_room) for k in KEYS[:500]
    ]


@pytest.mark.parametrize(
    ("engines", "has_room"),
    [
        pytest.param([], always, id="no engines"),
        pytest.param(names(1), never, id="one full"),
        pytest.param(names(5), never, id="all full"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_none_when_nothing_has_room(
    kind: Literal["consistent-hash", "round-robin"],
    engines: list[str],
    has_room: Callable[[str], bool],
) -> None:
    balancer = make_balancer(kind)
    for engine in engines:
        balancer.add(engine)
    assert balancer.choose("exec-1", has_room) is None


def test_no_engines_has_no_preferred_and_no_walk() -> None:
    ring = ConsistentHash()
    assert ring.preferred("exec-1") is None
    assert ring.walk("exec-1") == ()


def test_next_on_ring_is_stable_when_unrelated_engines_change() -> None:
    ring = ConsistentHash(names(6))
    key = "exec-42"
    first, second, *others = ring.walk(key)
    has_room = room_except(first)
    assert ring.choose(key, has_room) == second

    for other in others:
        ring.remove(other)
        assert ring.choose(key, has_room) == second
    for other in others:
        ring.add(other)
        assert ring.choose(key, has_room) == second


def test_a_ring_that_changed_answers_like_a_fresh_one() -> None:
    # The cached walks must not outlive the membership they were computed for.
    ring = ConsistentHash(names(5))
    has_room = room_except("engine-0", "engine-1")
    for key in KEYS[:2000]:
        ring.choose(key, has_room)
    ring.remove("engine-3")
    ring.add("engine-new")
    fresh = ConsistentHash(["engine-0", "engine-1", "engine-2", "engine-4", "engine-new"])
    for key in KEYS[:2000]:
        assert ring.walk(key) == fresh.walk(key)
        assert ring.choose(key, has_room) == fresh.choose(key, has_room)


@pytest.mark.parametrize("kind", KINDS)
def test_add_and_remove_are_idempotent(kind: Literal["consistent-hash", "round-robin"]) -> None:
    balancer = make_balancer(kind)
    balancer.add("a")
    balancer.add("a")
    balancer.add("b")
    assert balancer.engines == frozenset({"a", "b"})
    balancer.remove("a")
    balancer.remove("a")
    balancer.remove("never-added")
    assert balancer.engines == frozenset({"b"})
    assert balancer.choose("exec-1", always) == "b"


def test_make_balancer_builds_the_named_kind() -> None:
    assert isinstance(make_balancer("consistent-hash"), ConsistentHash)
    assert isinstance(make_balancer("round-robin"), RoundRobin)
    with pytest.raises(ValueError, match="least-loaded"):
        make_balancer("least-loaded")  # type: ignore[arg-type]


# -- round robin ---------------------------------------------------------------------------------


def rotate(balancer: Balancer, times: int, has_room: Callable[[str], bool]) -> list[str | None]:
    return [balancer.choose(f"exec-{i}", has_room) for i in range(times)]


@pytest.mark.parametrize(
    ("engines", "full", "expected"),
    [
        (["a"], [], ["a", "a", "a"]),
        (["c", "a", "b"], [], ["a", "b", "c", "a", "b", "c"]),
        (["a", "b", "c"], ["b"], ["a", "c", "a", "c"]),
        (["a", "b", "c"], ["a", "c"], ["b", "b", "b"]),
        (["a", "b", "c"], ["a", "b", "c"], [None, None]),
    ],
)
def test_round_robin_rotates_in_sorted_order_skipping_full(
    engines: list[str], full: list[str], expected: list[str | None]
) -> None:
    assert rotate(RoundRobin(engines), len(expected), room_except(*full)) == expected


def test_round_robin_ignores_the_key() -> None:
    balancer = RoundRobin(["a", "b"])
    assert [balancer.choose("same-key", always) for _ in range(4)] == ["a", "b", "a", "b"]


def test_round_robin_resumes_after_all_were_full() -> None:
    balancer = RoundRobin(["a", "b", "c"])
    assert rotate(balancer, 1, always) == ["a"]
    assert rotate(balancer, 1, never) == [None]
    assert rotate(balancer, 2, always) == ["b", "c"]


def test_round_robin_add_and_remove_while_rotating() -> None:
    balancer = RoundRobin(["a", "c", "e"])
    assert rotate(balancer, 2, always) == ["a", "c"]
    balancer.add("d")  # just after the last chosen: next
    balancer.add("b")  # behind the cursor: reached on the next lap
    assert rotate(balancer, 3, always) == ["d", "e", "a"]
    balancer.remove("b")  # the next one goes: skip to the one after it
    assert rotate(balancer, 1, always) == ["c"]
    balancer.remove("c")  # the last chosen goes: continue after its place
    assert rotate(balancer, 3, always) == ["d", "e", "a"]
    for engine in ["a", "d", "e"]:
        balancer.remove(engine)
    assert rotate(balancer, 1, always) == [None]
    balancer.add("z")
    assert rotate(balancer, 2, always) == ["z", "z"]


# -- properties ----------------------------------------------------------------------------------

engine_ids = st.text(min_size=1, max_size=12)
engine_sets = st.sets(engine_ids, max_size=8)
SMALL = 16  # vnodes for the structural properties below: they hold for any count, and it is quicker


def of(engines: Iterable[str]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(sorted(engines))) if engines else st.just(frozenset())


@given(st.sampled_from(KINDS), engine_sets, st.data(), st.lists(st.text(max_size=20), max_size=5))
def test_chooses_a_member_with_room_iff_one_exists(
    kind: Literal["consistent-hash", "round-robin"],
    engines: set[str],
    data: st.DataObject,
    keys: list[str],
) -> None:
    full = data.draw(of(engines), label="full")
    balancer = make_balancer(kind)
    for engine in engines:
        balancer.add(engine)
    assert balancer.engines == engines
    for key in keys:
        chosen = balancer.choose(key, lambda engine: engine not in full)
        if engines - full:
            assert chosen in engines - full
        else:
            assert chosen is None


@given(engine_sets.filter(bool), st.data(), st.text(max_size=20))
def test_consistent_hash_takes_the_first_engine_with_room_clockwise(
    engines: set[str], data: st.DataObject, key: str
) -> None:
    full = data.draw(of(engines), label="full")
    ring = ConsistentHash(engines, vnodes=SMALL)
    walk = ring.walk(key)
    assert sorted(walk) == sorted(engines)
    assert walk[0] == ring.preferred(key)
    with_room = [engine for engine in walk if engine not in full]
    assert ring.choose(key, lambda engine: engine not in full) == (
        with_room[0] if with_room else None
    )


@given(engine_sets.filter(bool), engine_ids, st.data(), st.text(max_size=20))
def test_membership_changes_elsewhere_keep_the_choice(
    engines: set[str], newcomer: str, data: st.DataObject, key: str
) -> None:
    full = data.draw(of(engines), label="full")

    def has_room(engine: str) -> bool:
        return engine not in full

    ring = ConsistentHash(engines, vnodes=SMALL)
    chosen = ring.choose(key, has_room)

    ring.add(newcomer)  # either the newcomer takes the key, or nothing changes
    assert ring.choose(key, has_room) in {chosen, newcomer}
    if newcomer not in engines:
        ring.remove(newcomer)
    assert ring.choose(key, has_room) == chosen

    leaving = data.draw(of(engines - {chosen} if chosen is not None else engines), label="leaving")
    for engine in leaving:
        ring.remove(engine)
    assert ring.choose(key, has_room) == chosen
