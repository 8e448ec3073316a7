"""The periods of a schedule: calendar days, weeks and months in a time zone, or fixed slices.

`every` is `Nmin` (N divides 60), `hour`, `day`, `week` (from Monday) or `month`. Days, weeks
and months are calendar periods in the schedule's IANA time zone: each starts at local midnight
(or at the first local instant of that date when midnight does not exist there), so a Berlin
day lasts 23 hours in March and 25 in October. `Nmin` and `hour` periods are fixed slices of UTC
time counted from the schedule's first period start: around a DST change no slice is doubled or
missing, however the local clock jumps. Every instant is an aware datetime; results are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

CALENDAR_UNITS = ("day", "week", "month")
_MINUTES = re.compile(r"(\d+)min")
_CALENDAR_OFFSETS = {
    "day": pd.DateOffset(days=1),
    "week": pd.DateOffset(weeks=1),
    "month": pd.DateOffset(months=1),
}


@dataclass(frozen=True)
class Every:
    """How long a period is: `minutes` for fixed slices, else a calendar `unit`."""

    text: str
    unit: str
    minutes: int = 0

    @classmethod
    def parse(cls, text: str) -> Every:
        """Raises `ValueError` naming the accepted forms."""
        if text == "hour":
            return cls(text, "minute", 60)
        if text in CALENDAR_UNITS:
            return cls(text, text)
        match = _MINUTES.fullmatch(text)
        if match and int(match.group(1)) > 0 and 60 % int(match.group(1)) == 0:
            return cls(text, "minute", int(match.group(1)))
        raise ValueError(
            f"every must be Nmin with N dividing 60 (1min, 5min, 15min, 30min...), hour, day, "
            f"week or month, got {text!r}"
        )

    @property
    def fixed(self) -> timedelta | None:
        """The length of a fixed slice; None for calendar periods."""
        return timedelta(minutes=self.minutes) if self.minutes else None


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone; `ValueError` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)"
        ) from None


def format_duration(value: timedelta) -> str:
    """The shortest of the forms that `jobs_pipeline.settings.parse_duration` reads (`30s`,
    `15min`, `2h`, `90d`) that says `value` exactly."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a naive local time. An ambiguous time (the hour repeated when clocks go
    back) is its first occurrence; a time in a gap (clocks go forward) maps, with `fold=0`, to
    the instant the gap ends when it is the gap's start, which is what a period boundary needs."""
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def exists_locally(wall: datetime, zone: ZoneInfo) -> bool:
    """Whether a naive local time is shown by the clocks of `zone` (not skipped by a DST gap)."""
    return localize(wall, zone).astimezone(zone).replace(tzinfo=None) == wall


def parse_local_time(text: str, zone: ZoneInfo) -> datetime:
    """ISO 8601 (`2024-03-31`, `2024-03-31 06:00`, `2024-03-31T06:00+02:00`, `...Z`) as UTC; a
    time without an offset is a local time in `zone`. A local time the clocks skip is refused."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    if not exists_locally(value, zone):
        raise ValueError(f"{text!r} does not exist in {zone.key}: the clocks skip it")
    return localize(value, zone)


@dataclass(frozen=True)
class Periods:
    """The periods of one schedule. `anchor` is the first period's start: fixed slices are
    counted from it (it is ignored by calendar periods)."""

    every: Every
    zone: ZoneInfo
    anchor: datetime

    def align(self, instant: datetime) -> datetime:
        """The start of the period holding `instant`, counted in local clock time: a fixed slice
        starts at a local minute that is a multiple of its length. Used to pick an anchor."""
        if self.every.fixed is None:
            return self.floor(instant)
        wall = instant.astimezone(self.zone)
        minute = wall.hour * 60 + wall.minute
        minute -= minute % self.every.minutes
        aligned = wall.replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0)
        return aligned.astimezone(UTC)

    def floor(self, instant: datetime) -> datetime:
        """The start of the period that holds `instant`."""
        fixed = self.every.fixed
        if fixed is not None:
            return self.anchor + ((instant - self.anchor) // fixed) * fixed
        wall = instant.astimezone(self.zone).replace(tzinfo=None)
        day = datetime(wall.year, wall.month, wall.day)
        if self.every.unit == "week":
            day -= timedelta(days=day.weekday())
        elif self.every.unit == "month":
            day = day.replace(day=1)
        return localize(day, self.zone)

    def following(self, start: datetime) -> datetime:
        """The start of the period after the one starting at `start` (its end)."""
        fixed = self.every.fixed
        if fixed is not None:
            return start + fixed
        wall = start.astimezone(self.zone).replace(tzinfo=None)
        day = datetime(wall.year, wall.month, wall.day)
        following = (pd.Timestamp(day) + _CALENDAR_OFFSETS[self.every.unit]).to_pydatetime()
        return localize(following, self.zone)

    def first_at_or_after(self, instant: datetime) -> datetime:
        start = self.floor(instant)
        return start if start == instant else self.following(start)

    def starts(self, low: datetime, high: datetime) -> list[datetime]:
        """The starts of the periods that start in `[low, high)`, in order."""
        start = self.first_at_or_after(low)
        fixed = self.every.fixed
        if fixed is not None:
            count = max(0, -((start - high) // fixed))
            return [start + i * fixed for i in range(count)]
        starts = []
        while start < high:
            starts.append(start)
            start = self.following(start)
        return starts

    def count(self, low: datetime, high: datetime) -> int:
        """How many periods start in `[low, high)`: arithmetic for fixed slices, so a long
        downtime of 1-minute periods costs nothing to measure."""
        fixed = self.every.fixed
        if fixed is None:
            return len(self.starts(low, high))
        return max(0, -((self.first_at_or_after(low) - high) // fixed))

    def newest_starts(self, low: datetime, high: datetime, limit: int) -> list[datetime]:
        """The last `limit` starts of `starts(low, high)`, without listing the others."""
        if limit <= 0:
            return []
        fixed = self.every.fixed
        if fixed is None:
            return self.starts(low, high)[-limit:]
        count = self.count(low, high)
        first = self.first_at_or_after(low)
        return [first + i * fixed for i in range(max(0, count - limit), count)]
