"""Placement: which engine runs an execution. Pure: no I/O, no asyncio, no clock.

A `Balancer` holds the set of live engine ids (discovery calls `add`/`remove`) and answers
`choose(key, has_room)`: the engine for ``key``, skipping engines for which ``has_room(id)`` is
false, or ``None`` when every engine is full or there are none. The caller owns the load figures;
this module only orders the candidates.

- `ConsistentHash` (``LOAD_BALANCER_TYPE=consistent-hash``): a uhashring ring keyed by the
  execution id or the caller's routing key. The key's *preferred* engine is the owner of the first
  ring point clockwise from the key's hash; when an engine joins or leaves only ~1/N of the keys
  change preferred engine. Bounded load: a full engine passes the execution to the next distinct
  engine clockwise, so the fallback for a key is deterministic and does not move when unrelated
  engines come and go.
- `RoundRobin` (``LOAD_BALANCER_TYPE=round-robin``): rotates through the engines in sorted-id
  order, skipping full ones; the key is ignored.

Vnodes: 160 points per engine (uhashring's default). Over 10,000 random UUID keys and 100 random
sets of engine names (pod names and ``ip:port``), the idlest and busiest engine owned 0.76-1.18 of
a fair 1/N share with 3 engines and 0.76-1.24 with 10. 256 vnodes barely tightens that
(0.80-1.25 with 10); 40 widens it to 0.50-1.53.

Cost, on a 10-engine ring (CPython 3.11, best of 9): ``choose`` takes ~1.2 µs when the preferred
engine has room, ~1.7 µs when it is full and the walk goes on, ~1.8 µs when all ten are full;
uhashring's own ``range()`` walk is ~4.9 µs. Measured with::

    python -m timeit -r 9 -s 'from orchestrator.ring import ConsistentHash' \
        -s 'ring = ConsistentHash(f"weir-engine-{i}" for i in range(10))' \
        -s 'keys = [f"exec-{i:08x}" for i in range(10_000)]' \
        -s 'room = lambda e: True' 'for k in keys: ring.choose(k, room)'   # / 10,000

uhashring builds the ring (vnode points, hashing) and is touched again only on ``add``/``remove``,
after which the points and their owners are copied into two flat lists. ``choose`` then does one
md5, one bisect and a list lookup; the clockwise walk of distinct engines from a ring point is
computed the first time its owner is full and cached until membership changes (at most
points x engines references).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from uhashring import HashRing

__all__ = ["VNODES", "Balancer", "ConsistentHash", "RoundRobin", "make_balancer"]

VNODES = 160
"""Ring points per engine; see the module docstring for the evenness measured."""


class Balancer(Protocol):
    """Chooses an engine for an execution among the live ones that have room."""

    def add(self, engine_id: str) -> None:
        """Add an engine; adding a present one does nothing."""
        ...

    def remove(self, engine_id: str) -> None:
        """Remove an engine; removing an absent one does nothing."""
        ...

    @property
    def engines(self) -> frozenset[str]:
        """The engines currently placed on."""
        ...

    def choose(self, key: str, has_room: Callable[[str], bool]) -> str | None:
        """The engine for ``key`` among those with room; ``None`` if all are full or none exist."""
        ...


def _md5(key: str) -> int:
    # The same value as uhashring's default hash (int of the md5 hex digest), a little cheaper.
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big")


class ConsistentHash:
    """A consistent-hash ring with bounded load: a full engine passes to the next on the ring."""

    __slots__ = ("_engines", "_owners", "_points", "_ring", "_walks")

    def __init__(self, engines: Iterable[str] = (), *, vnodes: int = VNODES) -> None:
        self._ring = HashRing(nodes=list(dict.fromkeys(engines)), vnodes=vnodes, hash_fn=_md5)
        self._engines: frozenset[str] = frozenset()
        self._points: list[int] = []  # sorted ring positions
        self._owners: list[str] = []  # the engine at each of those positions
        self._walks: dict[int, tuple[str, ...]] = {}  # position -> distinct engines clockwise
        self._rebuild()

    @property
    def engines(self) -> frozenset[str]:
        return self._engines

    def add(self, engine_id: str) -> None:
        if engine_id not in self._engines:
            self._ring.add_node(engine_id)
            self._rebuild()

    def remove(self, engine_id: str) -> None:
        if engine_id in self._engines:
            self._ring.remove_node(engine_id)
            self._rebuild()

    def preferred(self, key: str) -> str | None:
        """The engine owning ``key``, ignoring load; ``None`` when there are no engines."""
        if not self._points:
            return None
        return self._owners[self._index(key)]

    def walk(self, key: str) -> tuple[str, ...]:
        """Every engine, in the order ``choose`` tries them for ``key``."""
        if not self._points:
            return ()
        return self._walk_from(self._index(key))

    def choose(self, key: str, has_room: Callable[[str], bool]) -> str | None:
        if not self._points:
            return None
        index = self._index(key)
        owner = self._owners[index]
        if has_room(owner):
            return owner
        for engine in self._walk_from(index)[1:]:
            if has_room(engine):
                return engine
        return None

    def _index(self, key: str) -> int:
        index = bisect_right(self._points, _md5(key))
        return 0 if index == len(self._points) else index

    def _walk_from(self, index: int) -> tuple[str, ...]:
        walk = self._walks.get(index)
        if walk is None:
            owners, total = self._owners, len(self._engines)
            seen: dict[str, None] = {}
            for i in range(index, index + len(owners)):
                seen.setdefault(owners[i % len(owners)])
                if len(seen) == total:
                    break
            walk = self._walks[index] = tuple(seen)
        return walk

    def _rebuild(self) -> None:
        points: list[tuple[int, str]] = self._ring.get_points()
        self._points = [point for point, _ in points]
        self._owners = [owner for _, owner in points]
        self._engines = frozenset(self._ring.get_nodes())
        self._walks = {}


class RoundRobin:
    """Rotates through the engines in sorted-id order, skipping full ones; ignores the key.

    The rotation remembers the last engine chosen, not an index, so adding or removing engines
    mid-rotation continues with the next id after it.
    """

    __slots__ = ("_engines", "_last", "_order")

    def __init__(self, engines: Iterable[str] = ()) -> None:
        self._engines = frozenset(engines)
        self._order = tuple(sorted(self._engines))
        self._last: str | None = None

    @property
    def engines(self) -> frozenset[str]:
        return self._engines

    def add(self, engine_id: str) -> None:
        if engine_id not in self._engines:
            self._engines |= {engine_id}
            self._order = tuple(sorted(self._engines))

    def remove(self, engine_id: str) -> None:
        if engine_id in self._engines:
            self._engines -= {engine_id}
            self._order = tuple(sorted(self._engines))

    def choose(self, key: str, has_room: Callable[[str], bool]) -> str | None:
        order = self._order
        start = 0 if self._last is None else bisect_right(order, self._last)
        for step in range(len(order)):
            engine = order[(start + step) % len(order)]
            if has_room(engine):
                self._last = engine
                return engine
        return None


def make_balancer(kind: Literal["consistent-hash", "round-robin"]) -> Balancer:
    """The balancer named by ``LOAD_BALANCER_TYPE``, with no engines yet."""
    if kind == "consistent-hash":
        return ConsistentHash()
    if kind == "round-robin":
        return RoundRobin()
    raise ValueError(
        f"unknown load balancer type {kind!r}: expected consistent-hash or round-robin"
    )
