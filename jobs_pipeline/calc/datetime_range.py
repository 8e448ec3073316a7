"""Half-open UTC date-time ranges and the timestamp formats that job parameters use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from itertools import pairwise

SEED_FORMAT = "%Y-%m-%d %H:%M:%S"
"""The seed's timestamp format; such strings carry no offset and are read as UTC."""

# Shapes accepted besides the seed format. `datetime.fromisoformat` alone is more lenient
# (week dates, ordinal dates, compact forms, hour-only offsets), so the shape is checked first
# and the calendar (month 13, February 30) is left to `fromisoformat`.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?",
    re.IGNORECASE,
)


def parse_timestamp(text: str) -> datetime:
    """Parses a timestamp given in the seed format or in ISO 8601.

    Accepted forms:

    * ``"2024-01-31 23:50:00"`` (the seed's ``"%Y-%m-%d %H:%M:%S"``), read as UTC;
    * ISO 8601 with an offset or ``Z``: ``"2024-01-31T23:50:00+01:00"``, ``"2024-01-31T22:50Z"``
      (seconds and up to six fractional digits are optional, ``T`` may be a space);
    * ISO 8601 without an offset (``"2024-01-31T23:50:00"``), read as UTC;
    * a bare date ``"2024-01-31"``, read as midnight UTC.

    Surrounding whitespace is ignored.

    Args:
        text: The timestamp text.

    Returns:
        A timezone-aware datetime in UTC.

    Raises:
        ValueError: ``text`` is not a string, has none of the forms above or names a date or time
            that does not exist (``"2024-13-01"``, ``"2023-02-29"``).
    """
    if not isinstance(text, str):
        raise ValueError(f"malformed date {text!r}: expected a string")
    stripped = text.strip()
    if _ISO_DATE.fullmatch(stripped) or _ISO_DATETIME.fullmatch(stripped):
        try:
            parsed = datetime.fromisoformat(stripped.upper())
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed.astimezone(UTC)
    raise ValueError(f"malformed date {text!r}: expected 'YYYY-MM-DD HH:MM:SS' or ISO 8601")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timedelta_ns(value: timedelta) -> int:
    """Whole nanoseconds in ``value`` (a `pandas.Timedelta` keeps its nanoseconds)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return micros * 1_000 + int(getattr(value, "nanoseconds", 0))


def datetime_ns(value: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime (or `pandas.Timestamp`)."""
    return timedelta_ns(value - _EPOCH)


def _as_utc(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class DateTimeRange:
    """A half-open range of instants ``[start, end)``.

    Both ends are timezone-aware and stored in UTC; any other zone is converted on construction.
    ``start`` belongs to the range, ``end`` does not, so consecutive ranges that share an end and
    a start do not overlap.

    Attributes:
        start: First instant in the range (UTC).
        end: First instant after the range (UTC).

    Raises:
        ValueError: A bound is naive or ``start >= end``.
        TypeError: A bound is not a datetime.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = _as_utc(self.start, "start")
        end = _as_utc(self.end, "end")
        if start >= end:
            raise ValueError(
                f"start must be before end, got start={start.isoformat()} end={end.isoformat()}"
            )
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def parse(cls, start: str, end: str) -> DateTimeRange:
        """Builds a range from two timestamp strings (see `parse_timestamp` for the formats).

        Raises:
            ValueError: A string is malformed or ``start >= end``.
        """
        return cls(parse_timestamp(start), parse_timestamp(end))

    @cached_property
    def bounds_ns(self) -> tuple[int, int]:
        """``(start, end)`` in nanoseconds since the Unix epoch; computed once per range, since
        a calculation reads them on every call."""
        return datetime_ns(self.start), datetime_ns(self.end)

    @property
    def duration(self) -> timedelta:
        """Length of the range (always positive)."""
        return self.end - self.start

    def __contains__(self, instant: object) -> bool:
        """Tells whether ``start <= instant < end``.

        Raises:
            ValueError: ``instant`` is a naive datetime.
            TypeError: ``instant`` is not a datetime.
        """
        if not isinstance(instant, datetime):
            raise TypeError(f"expected a datetime, got {type(instant).__name__}")
        instant = _as_utc(instant, "instant")
        return self.start <= instant < self.end

    def overlaps(self, other: DateTimeRange) -> bool:
        """Tells whether the two ranges share at least one instant (touching ends do not)."""
        return self.start < other.end and other.start < self.end

    def intersection(self, other: DateTimeRange) -> DateTimeRange | None:
        """Returns the instants that belong to both ranges, or None when they do not overlap."""
        if not self.overlaps(other):
            return None
        return DateTimeRange(max(self.start, other.start), min(self.end, other.end))

    def split(self, step: timedelta) -> list[DateTimeRange]:
        """Cuts the range into consecutive chunks of length ``step``.

        The chunks cover the range exactly, in order, without overlap; the last one is shorter
        when ``step`` does not divide the duration.

        Args:
            step: Length of each chunk; must be positive.

        Raises:
            ValueError: ``step`` is zero or negative.
        """
        if step <= timedelta(0):
            raise ValueError(f"step must be positive, got {step}")
        count = -(-self.duration // step)  # ceiling division of two timedeltas
        bounds = [self.start + i * step for i in range(count)] + [self.end]
        return [DateTimeRange(lo, hi) for lo, hi in pairwise(bounds)]

    def isoformat(self) -> tuple[str, str]:
        """Returns ``(start, end)`` in ISO 8601 with a ``+00:00`` offset."""
        return self.start.isoformat(), self.end.isoformat()

    def to_seed_strings(self) -> tuple[str, str]:
        """Returns ``(start, end)`` in the seed's ``"%Y-%m-%d %H:%M:%S"`` format (UTC).

        Raises:
            ValueError: A bound has a fractional second, which the seed format cannot express.
        """
        if self.start.microsecond or self.end.microsecond:
            raise ValueError(f"{self} has fractional seconds: the seed format cannot hold them")
        return self.start.strftime(SEED_FORMAT), self.end.strftime(SEED_FORMAT)

    def __str__(self) -> str:
        start, end = self.isoformat()
        return f"[{start}, {end})"
