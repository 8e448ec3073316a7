"""Schedule periods: calendar days, weeks and months in a time zone, fixed slices in UTC."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from jobs_pipeline.calc.periods import (
    Every,
    Periods,
    format_duration,
    parse_local_time,
    parse_zone,
)
from jobs_pipeline.settings import parse_duration

BERLIN = parse_zone("Europe/Berlin")
NEW_YORK = parse_zone("America/New_York")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def periods(every: str, zone: str, anchor: datetime | None = None) -> Periods:
    return Periods(Every.parse(every), parse_zone(zone), anchor or utc(2024, 1, 1))


def day_bounds(zone: str, local_date: str) -> tuple[datetime, datetime]:
    days = periods("day", zone)
    start = days.floor(parse_local_time(f"{local_date} 12:00", parse_zone(zone)))
    return start, days.following(start)


@pytest.mark.parametrize(
    ("zone", "date", "start", "end", "hours"),
    [
        # Clocks go forward: a 23-hour day; back: a 25-hour day.
        ("Europe/Berlin", "2024-03-31", utc(2024, 3, 30, 23), utc(2024, 3, 31, 22), 23),
        ("Europe/Berlin", "2024-10-27", utc(2024, 10, 26, 22), utc(2024, 10, 27, 23), 25),
        ("Europe/Berlin", "2024-07-01", utc(2024, 6, 30, 22), utc(2024, 7, 1, 22), 24),
        ("America/New_York", "2024-03-10", utc(2024, 3, 10, 5), utc(2024, 3, 11, 4), 23),
        ("America/New_York", "2024-11-03", utc(2024, 11, 3, 4), utc(2024, 11, 4, 5), 25),
        ("America/New_York", "2024-01-15", utc(2024, 1, 15, 5), utc(2024, 1, 16, 5), 24),
    ],
)
def test_days_around_dst_changes_have_their_utc_bounds(
    zone: str, date: str, start: datetime, end: datetime, hours: int
) -> None:
    assert day_bounds(zone, date) == (start, end)
    assert end - start == timedelta(hours=hours)


@pytest.mark.parametrize(
    ("zone", "date", "hours"),
    [
        ("Europe/Berlin", "2024-03-31", 23),
        ("Europe/Berlin", "2024-10-27", 25),
        ("America/New_York", "2024-03-10", 23),
        ("America/New_York", "2024-11-03", 25),
    ],
)
@pytest.mark.parametrize("every", ["hour", "15min", "1min"])
def test_slices_of_a_dst_day_are_utc_slices_none_doubled_none_missing(
    zone: str, date: str, hours: int, every: str
) -> None:
    start, end = day_bounds(zone, date)
    slices = periods(every, zone, anchor=start)
    length = Every.parse(every).fixed
    assert length is not None
    starts = slices.starts(start, end)
    assert len(starts) == hours * (timedelta(hours=1) // length)
    assert len(set(starts)) == len(starts)
    assert starts[0] == start
    assert all(b - a == length for a, b in itertools.pairwise(starts))
    assert slices.following(starts[-1]) == end
    assert slices.count(start, end) == len(starts)


def test_local_hours_are_aligned_to_the_local_clock() -> None:
    # Kathmandu is UTC+05:45: its hours start at :15 UTC.
    hours = periods("hour", "Asia/Kathmandu")
    assert hours.align(utc(2024, 1, 1, 10, 40)) == utc(2024, 1, 1, 10, 15)
    quarters = periods("15min", "Europe/Berlin")
    assert quarters.align(utc(2024, 1, 1, 10, 44, 59)) == utc(2024, 1, 1, 10, 30)


def test_weeks_start_on_monday_and_months_on_the_first_in_local_time() -> None:
    weeks = periods("week", "Europe/Berlin")
    # Wednesday 2024-03-27 local; its week began Monday 2024-03-25 00:00 CET and ends Monday
    # 2024-04-01 00:00 CEST: 167 hours.
    start = weeks.floor(utc(2024, 3, 27, 12))
    assert start == utc(2024, 3, 24, 23)
    assert weeks.following(start) == utc(2024, 3, 31, 22)
    months = periods("month", "America/New_York")
    start = months.floor(utc(2024, 3, 1, 3))  # still February 29 in New York
    assert start == utc(2024, 2, 1, 5)
    assert months.following(start) == utc(2024, 3, 1, 5)
    assert months.following(utc(2024, 3, 1, 5)) == utc(2024, 4, 1, 4)


def test_starts_of_a_range_and_the_newest_of_them() -> None:
    days = periods("day", "UTC")
    assert days.starts(utc(2024, 1, 1, 12), utc(2024, 1, 4)) == [utc(2024, 1, 2), utc(2024, 1, 3)]
    assert days.newest_starts(utc(2024, 1, 1), utc(2024, 1, 11), 2) == [
        utc(2024, 1, 9),
        utc(2024, 1, 10),
    ]
    minutes = periods("1min", "UTC")
    year = (utc(2023, 1, 1), utc(2024, 1, 1))
    assert minutes.count(*year) == 365 * 24 * 60
    assert minutes.newest_starts(*year, 1) == [utc(2023, 12, 31, 23, 59)]
    assert days.starts(utc(2024, 1, 2), utc(2024, 1, 2)) == []


def test_local_times_without_offset_are_in_the_zone() -> None:
    assert parse_local_time("2024-03-31", BERLIN) == utc(2024, 3, 30, 23)
    assert parse_local_time("2024-07-01 06:00", NEW_YORK) == utc(2024, 7, 1, 10)
    assert parse_local_time("2024-07-01T06:00+00:00", NEW_YORK) == utc(2024, 7, 1, 6)
    assert parse_local_time("2024-07-01T06:00Z", BERLIN) == utc(2024, 7, 1, 6)
    # The repeated hour: its first occurrence (summer time).
    assert parse_local_time("2024-10-27 02:30", BERLIN) == utc(2024, 10, 27, 0, 30)
    with pytest.raises(ValueError, match="does not exist in Europe/Berlin"):
        parse_local_time("2024-03-31 02:30", BERLIN)
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_local_time("yesterday", BERLIN)


@pytest.mark.parametrize("text", ["7min", "0min", "90min", "daily", "2h", ""])
def test_every_refuses_what_is_not_a_period(text: str) -> None:
    with pytest.raises(ValueError, match="every must be Nmin with N dividing 60"):
        Every.parse(text)


def test_zones_and_durations() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        parse_zone("Mars/Olympus")
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("15min") == timedelta(minutes=15)
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("90d") == timedelta(days=90)
    with pytest.raises(ValueError, match="a duration is"):
        parse_duration("2 hours")
    assert [format_duration(parse_duration(t)) for t in ("90s", "15min", "2h", "90d", "0s")] == [
        "90s",
        "15min",
        "2h",
        "90d",
        "0s",
    ]
