"""Pure cron logic: next ticks in a time zone across the real 2026 DST changes, and ``plan``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.definition.model import CatchUp
from orchestrator.triggers.cron import GRACE, CronError, CronSchedule, plan, to_instant, utc_iso


def at(text: str) -> float:
    """An ISO time with an offset (or UTC when it has none) as Unix seconds."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def walk(schedule: CronSchedule, start: str, until: str) -> list[str]:
    """The ticks in (start, until] as local ISO times."""
    return [schedule.local_iso(t) for t in schedule.ticks(at(start), at(until))]


# Europe/Paris: 2026-03-29 02:00 -> 03:00 (CET -> CEST); 2026-10-25 03:00 -> 02:00.
# America/New_York: 2026-03-08 02:00 -> 03:00 (EST -> EDT); 2026-11-01 02:00 -> 01:00.
DST = [
    # a daily tick in the gap fires once, at the first instant after it
    (
        "Europe/Paris",
        "30 2 * * *",
        "2026-03-27T12:00:00+01:00",
        "2026-03-31T12:00:00+02:00",
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
        ],
    ),
    # a daily tick in the overlap fires once, at its first occurrence
    (
        "Europe/Paris",
        "30 2 * * *",
        "2026-10-24T12:00:00+02:00",
        "2026-10-26T12:00:00+01:00",
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    (
        "Europe/Paris",
        "0 * * * *",
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T04:30:00+02:00",
        ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"],
    ),
    (
        "Europe/Paris",
        "0 * * * *",
        "2026-10-25T00:30:00+02:00",
        "2026-10-25T04:30:00+01:00",
        [
            "2026-10-25T01:00:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T03:00:00+01:00",
            "2026-10-25T04:00:00+01:00",
        ],
    ),
    (
        "Europe/Paris",
        "*/15 * * * *",
        "2026-03-29T01:40:00+01:00",
        "2026-03-29T03:20:00+02:00",
        ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"],
    ),
    (
        "Europe/Paris",
        "*/15 * * * *",
        "2026-10-25T02:40:00+02:00",
        "2026-10-25T03:20:00+01:00",
        ["2026-10-25T02:45:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-25T03:15:00+01:00"],
    ),
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-07T12:00:00-05:00",
        "2026-03-09T12:00:00-04:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        "2026-10-31T12:00:00-04:00",
        "2026-11-02T12:00:00-05:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (
        "America/New_York",
        "0 * * * *",
        "2026-03-08T00:30:00-05:00",
        "2026-03-08T04:30:00-04:00",
        ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"],
    ),
    (
        "America/New_York",
        "0 * * * *",
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T03:30:00-05:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"],
    ),
    (
        "America/New_York",
        "*/15 * * * *",
        "2026-03-08T01:40:00-05:00",
        "2026-03-08T03:20:00-04:00",
        ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"],
    ),
    (
        "America/New_York",
        "*/15 * * * *",
        "2026-11-01T01:40:00-04:00",
        "2026-11-01T02:20:00-05:00",
        ["2026-11-01T01:45:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T02:15:00-05:00"],
    ),
]


@pytest.mark.parametrize(("zone", "cron", "start", "until", "expected"), DST)
def test_ticks_across_dst(
    zone: str, cron: str, start: str, until: str, expected: list[str]
) -> None:
    assert walk(CronSchedule(cron, zone), start, until) == expected


def test_next_after_from_inside_the_second_pass_of_an_overlap() -> None:
    schedule = CronSchedule("*/15 * * * *", "Europe/Paris")
    # 02:10 in the second pass (CET): 02:15 and the rest of the repeated hour fired in the
    # first pass already
    assert schedule.local_iso(schedule.next_after(at("2026-10-25T02:10:00+01:00"))) == (
        "2026-10-25T03:00:00+01:00"
    )


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        ("@daily", "UTC", "2026-06-01T00:00:00", "2026-06-02T00:00:00+00:00"),
        ("@hourly", "Asia/Tokyo", "2026-06-01T00:00:00", "2026-06-01T10:00:00+09:00"),
        ("0 9 * * MON-FRI", "Europe/Paris", "2026-06-05T08:00:00", "2026-06-08T09:00:00+02:00"),
        ("0 0 L * *", "UTC", "2026-02-01T00:00:00", "2026-02-28T00:00:00+00:00"),
        ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00", "2028-02-29T00:00:00+00:00"),
        # a tick exactly at "after" is not after it
        ("0 * * * *", "UTC", "2026-06-01T05:00:00", "2026-06-01T06:00:00+00:00"),
        ("0 * * * *", "UTC", "2026-06-01T05:00:00.5", "2026-06-01T06:00:00+00:00"),
    ],
)
def test_next_after(cron: str, zone: str, after: str, expected: str) -> None:
    schedule = CronSchedule(cron, zone)
    assert schedule.local_iso(schedule.next_after(at(after))) == expected


def test_invalid_schedules() -> None:
    with pytest.raises(CronError, match="expected 5 fields"):
        CronSchedule("* * * * * *")
    with pytest.raises(CronError, match="unknown time zone 'Mars/Base'"):
        CronSchedule("@daily", "Mars/Base")


def wall(text: str) -> datetime:
    """A naive wall-clock time."""
    return datetime.fromisoformat(text)


def test_to_instant_maps_a_gap_to_its_end_and_an_overlap_to_its_first_occurrence() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert utc_iso(to_instant(wall("2026-03-29T02:30"), paris)) == "2026-03-29T01:00:00Z"
    assert utc_iso(to_instant(wall("2026-10-25T02:30"), paris)) == "2026-10-25T00:30:00Z"
    lord_howe = ZoneInfo("Australia/Lord_Howe")  # a 30-minute DST shift
    assert utc_iso(to_instant(wall("2026-10-04T02:10"), lord_howe)) == "2026-10-03T15:30:00Z"


def check_ticks(schedule: CronSchedule, start: float, end: float) -> None:
    """Ticks strictly increase; every wall-clock time the expression names fires once: at its
    first occurrence when it happens twice, at the end of the gap when it does not exist."""
    ticks = schedule.ticks(start, end)
    assert ticks == sorted(set(ticks))
    zone = ZoneInfo(schedule.timezone)
    local = [datetime.fromtimestamp(t, zone).replace(tzinfo=None) for t in ticks]
    assert len(set(local)) == len(local)
    seen = set(local)
    walk = croniter(schedule.expression, datetime.fromtimestamp(start, zone).replace(tzinfo=None))
    wall = walk.get_next(datetime)
    while ticks and wall <= local[-1]:
        instant = to_instant(wall, zone)
        if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
            assert wall in seen, wall
        else:
            assert instant in ticks, wall
        wall = walk.get_next(datetime)


def test_a_year_of_hourly_ticks_in_paris() -> None:
    schedule = CronSchedule("0 * * * *", "Europe/Paris")
    check_ticks(schedule, at("2026-01-01T00:00:00"), at("2027-01-01T00:00:00"))
    assert len(schedule.ticks(at("2026-01-01T00:00:00"), at("2027-01-01T00:00:00"))) == 8760 - 1


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(
        ["Europe/Paris", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "UTC"]
    ),
    cron=st.sampled_from(["0 * * * *", "*/15 * * * *", "30 2 * * *", "0 0 * * *", "45 1 * * 0"]),
    day=st.sampled_from([66, 87, 94, 276, 297, 304]) | st.integers(0, 364),
)
def test_ticks_never_skip_or_double_a_wall_clock_tick(zone: str, cron: str, day: int) -> None:
    """Around 2026's DST changes (days 66, 87, 94, 276, 297, 304) and on random days."""
    start = at("2026-01-01T00:00:00") + (day - 1) * 86400
    check_ticks(CronSchedule(cron, zone), start, start + 3 * 86400)


# --- plan ---------------------------------------------------------------------------------------

HOURLY = CronSchedule("0 * * * *")
H = 3600.0
BASE = at("2026-06-01T00:00:00")


def hours(*values: float) -> tuple[float, ...]:
    return tuple(BASE + v * H for v in values)


@pytest.mark.parametrize(
    ("cursor", "now", "policy", "window", "fire", "missed", "cursor_after"),
    [
        # not due yet
        (1, 0.5, CatchUp.NONE, H, (), 0, 1),
        # on time, and late within the grace
        (1, 1, CatchUp.NONE, H, (1,), 0, 2),
        (1, 1 + GRACE / H, CatchUp.NONE, H, (1,), 0, 2),
        # just past the grace: missed
        (1, 1 + (GRACE + 1) / H, CatchUp.NONE, H, (), 1, 2),
        # downtime from 01:00 to 05:30
        (1, 5.5, CatchUp.NONE, H, (), 5, 6),
        (1, 5.5, CatchUp.LATEST, H, (5,), 4, 6),
        (1, 5.5, CatchUp.LATEST, 0.25 * H, (), 5, 6),
        (1, 5.5, CatchUp.ALL, 3 * H, (3, 4, 5), 2, 6),
        (1, 5.5, CatchUp.ALL, 24 * H, (1, 2, 3, 4, 5), 0, 6),
        # latest and all fire an on-time tick too, with a window smaller than the grace
        (5, 5, CatchUp.LATEST, 1, (5,), 0, 6),
        (5, 5, CatchUp.ALL, 1, (5,), 0, 6),
    ],
)
def test_plan(
    cursor: float,
    now: float,
    policy: CatchUp,
    window: float,
    fire: tuple[float, ...],
    missed: int,
    cursor_after: float,
) -> None:
    p = plan(HOURLY, BASE + cursor * H, BASE + now * H, policy, window)
    assert (p.fire, p.missed, p.cursor) == (hours(*fire), missed, BASE + cursor_after * H)


def test_plan_bounds_catch_up_all_to_the_most_recent_ticks() -> None:
    every_minute = CronSchedule("* * * * *")
    p = plan(every_minute, BASE + 60, BASE + 60 * 250 + 1, CatchUp.ALL, 24 * H, max_fires=100)
    assert len(p.fire) == 100
    assert p.fire[0] == BASE + 60 * 151 and p.fire[-1] == BASE + 60 * 250
    assert (p.missed, p.first_missed, p.last_missed) == (150, BASE + 60, BASE + 60 * 150)


def test_plan_after_a_long_downtime_counts_up_to_a_limit_and_jumps() -> None:
    every_minute = CronSchedule("* * * * *")
    now = BASE + timedelta(days=30).total_seconds()
    p = plan(every_minute, BASE + 60, now, CatchUp.LATEST, H)
    assert p.fire == (now,)
    assert p.missed_more
    assert p.missed == 1_000 + 60
    assert p.cursor == now + 60
