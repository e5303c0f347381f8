"""Exponential backoff with jitter between reconnection attempts: pure, with the randomness
injectable for tests."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """Delays of ``first`` seconds doubling up to ``cap``, each drawn uniformly from its upper
    half (so workers that lost the same server do not come back in step)::

        backoff = Backoff()
        delay = backoff.next()  # 0.05..0.1, then 0.1..0.2, ... never above 5.0
        backoff.reset()         # after a successful connection
    """

    def __init__(
        self,
        first: float = 0.1,
        cap: float = 5.0,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._first = first
        self._cap = cap
        self._uniform = uniform
        self._attempts = 0

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempts

    def next(self) -> float:
        """The delay before the next attempt."""
        ceiling = min(self._cap, self._first * 2.0 ** min(self._attempts, 32))
        self._attempts += 1
        return self._uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        self._attempts = 0
