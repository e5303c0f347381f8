"""Cron schedules in a time zone, and what a pass of the scheduler fires: pure, no I/O, no clock.

``CronSchedule(expression, timezone).next_after(t)`` is the first tick strictly after the instant
``t`` (Unix seconds). croniter walks the *wall clock* of the zone (naive datetimes), and every
wall-clock tick becomes an instant through ``zoneinfo``, so daylight saving time is handled here,
not by croniter (whose tz-aware mode, in version 7, fires a wall-clock time that occurs twice in a
fall-back overlap twice):

* **spring forward** (a gap, 02:00-03:00 in Paris on 2026-03-29): a tick whose wall-clock time
  does not exist fires once, at the first instant after the gap (03:00 local); every tick in the
  gap and a tick at the end of the gap are one fire at that instant.
* **fall back** (an overlap, 02:00-03:00 in Paris on 2026-10-25 happens twice): a wall-clock
  tick that occurs twice fires once, at its first occurrence. ``0 * * * *`` thus fires at the
  first 02:00 and next at 03:00, two hours later.

``plan(schedule, cursor, now, ...)`` decides one pass: given the persisted cursor (the next tick
to fire) and ``now``, which ticks fire, how many are skipped as missed, and the new cursor (the
first tick after ``now``). A tick is *on time* when ``now - tick <= GRACE``; older due ticks
were missed (the orchestrator was down or late) and the catch-up policy decides:

=========  =====================================================================================
``none``   on-time ticks fire; missed ones are skipped
``latest`` the most recent due tick fires if it is within the window; the others are skipped
``all``    every due tick within the window fires, oldest first, at most ``max_fires`` (the most
           recent ones); older ones are skipped
=========  =====================================================================================

The window is ``max(catch_up_window, GRACE)``: an on-time tick is always within it.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from engine.definition.checks import cron_problem, timezone_problem
from engine.definition.model import CatchUp

GRACE = 60.0
"""Seconds after its scheduled time during which a tick still counts as on time."""

MAX_CATCH_UP = 100
"""At most this many missed ticks fire in one pass under ``catch_up: all``."""

MAX_COUNTED = 1_000
"""Missed ticks older than the window are counted one by one up to this many; beyond that the
count stops (``Plan.missed_more``) and the walk jumps to the window."""

_MAX_STEPS = 100_000  # wall-clock ticks in a row that are not after the last: a guard


class CronError(ValueError):
    """The expression or the time zone is not valid; the message says why."""


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A five-field cron expression (or an alias such as ``@daily``) in an IANA time zone."""

    expression: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        problem = cron_problem(self.expression) or timezone_problem(self.timezone)
        if problem is not None:
            raise CronError(problem)

    @property
    def key(self) -> str:
        """``"<expression> <timezone>"``: what a persisted cursor was computed for."""
        return f"{self.expression.strip()} {self.timezone}"

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def next_after(self, instant: float) -> float:
        """The first tick strictly after ``instant`` (Unix seconds), as Unix seconds."""
        return next(self.iter_after(instant))

    def iter_after(self, instant: float) -> Iterator[float]:
        """The ticks strictly after ``instant``, ascending, without end.

        One croniter walk (croniter costs ~0.1 ms a tick: reuse the iterator for many ticks).
        """
        zone = self.zone
        wall = datetime.fromtimestamp(instant, zone).replace(tzinfo=None, fold=0)
        walk = croniter(self.expression.strip(), wall)
        last = instant
        stalled = 0
        while True:
            tick = to_instant(walk.get_next(datetime), zone)
            if tick > last:  # not a wall-clock time already passed (an overlap's second pass)
                last = tick  # nor one more tick of a gap, which all fire at its end
                stalled = 0
                yield tick
            else:
                stalled += 1
                if stalled > _MAX_STEPS:  # pragma: no cover - a guard
                    raise CronError(f"{self.expression!r}: no tick found after {last}")

    def ticks(self, after: float, until: float) -> list[float]:
        """Every tick in ``(after, until]``, ascending."""
        return list(itertools.takewhile(lambda tick: tick <= until, self.iter_after(after)))

    def local_iso(self, instant: float) -> str:
        """``instant`` as ISO 8601 in the schedule's zone, with its offset (``+02:00``)."""
        return datetime.fromtimestamp(instant, self.zone).isoformat()


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def to_instant(wall: datetime, zone: ZoneInfo) -> float:
    """The instant of the naive wall-clock time ``wall`` in ``zone``.

    A time that occurs twice (fall back) is its first occurrence; a time that does not exist
    (spring forward) is the first instant after the gap.
    """
    first = wall.replace(tzinfo=zone, fold=0)
    instant = first.timestamp()
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
        return instant  # exists (fold=0 is the first occurrence when it occurs twice)
    # In a gap: fold=1 reads it with the offset after the transition, an instant before it,
    # fold=0 with the offset before, an instant after it. The gap ends at the transition.
    before = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    after = int(instant) + 1
    offset = first.utcoffset()
    while after - before > 1:  # the first second whose offset is the post-transition one
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
            before = middle
        else:
            after = middle
    return float(after)


def utc_iso(instant: float) -> str:
    """``instant`` as ISO 8601 UTC with ``Z`` (seconds precision unless it has a fraction)."""
    moment = datetime.fromtimestamp(instant, UTC)
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one pass does with one trigger."""

    fire: tuple[float, ...]
    """Ticks to fire now, oldest first."""
    missed: int
    """Due ticks skipped (missed and not caught up)."""
    first_missed: float | None
    last_missed: float | None
    cursor: float
    """The new cursor: the first tick after ``now`` (unchanged when nothing was due)."""
    missed_more: bool = False
    """More ticks were missed than ``MAX_COUNTED``; ``missed`` counts only those."""


def plan(
    schedule: CronSchedule,
    cursor: float,
    now: float,
    catch_up: CatchUp = CatchUp.NONE,
    window: float = 3600.0,
    *,
    max_fires: int = MAX_CATCH_UP,
    grace: float = GRACE,
) -> Plan:
    """Which due ticks (``cursor`` and the ticks after it up to ``now``) fire; see the module."""
    if cursor > now:
        return Plan((), 0, None, None, cursor)
    horizon = now - max(window, grace) if catch_up is not CatchUp.NONE else now - grace
    old: list[float] = []  # due, older than the horizon: always missed
    recent: list[float] = []
    missed_more = False
    ticks = schedule.iter_after(cursor)
    tick = cursor
    while tick <= now:
        if tick >= horizon:
            recent.append(tick)
        elif len(old) < MAX_COUNTED:
            old.append(tick)
        else:  # do not walk months of minutes one by one
            missed_more = True
            ticks = schedule.iter_after(horizon - 1e-6)
        tick = next(ticks)
    if catch_up is CatchUp.LATEST:
        fire = recent[-1:]
        skipped = old + recent[:-1]
    elif catch_up is CatchUp.ALL:
        fire = recent[-max_fires:] if max_fires > 0 else []
        skipped = old + recent[: len(recent) - len(fire)]
    else:
        fire, skipped = recent, old
    return Plan(
        fire=tuple(fire),
        missed=len(skipped),
        first_missed=skipped[0] if skipped else None,
        last_missed=skipped[-1] if skipped else None,
        cursor=tick,
        missed_more=missed_more,
    )
