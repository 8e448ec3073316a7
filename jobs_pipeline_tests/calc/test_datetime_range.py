import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from jobs_pipeline.calc import DateTimeRange, parse_timestamp

CET = timezone(timedelta(hours=1))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31 23:50:00", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31T23:50:00", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31T23:50:00Z", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31t23:50:00z", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31T23:50Z", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31T23:50:00+00:00", utc(2024, 1, 31, 23, 50)),
        ("2024-02-01T00:50:00+01:00", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31T18:50:00-05:00", utc(2024, 1, 31, 23, 50)),
        ("2024-02-01 00:50:00+01:00", utc(2024, 1, 31, 23, 50)),
        ("2024-01-31T23:50:00.250000Z", utc(2024, 1, 31, 23, 50, 0, 250_000)),
        ("2024-01-31", utc(2024, 1, 31)),
        ("  2024-01-31 23:50:00\n", utc(2024, 1, 31, 23, 50)),
        ("2024-02-29 00:00:00", utc(2024, 2, 29)),
    ],
)
def test_parse_timestamp_reads_seed_format_and_iso_8601_as_utc(
    text: str, expected: datetime
) -> None:
    parsed = parse_timestamp(text)

    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2024-13-01",
        "2023-02-29 00:00:00",
        "2024-01-01 25:00:00",
        "2024-01-01 00:61:00",
        "2024/01/01 00:00:00",
        "01.01.2024",
        "2024-1-1 00:00:00",
        "20240101",
        "2024-W01-1",
        "2024-01-01T00:00:00+01",
        "2024-01-01T00:00:00 UTC",
        "2024-01-01 00:00:00 extra",
        "yesterday",
        "",
    ],
)
def test_parse_timestamp_rejects_malformed_text(text: str) -> None:
    expected = f"malformed date {text!r}: expected 'YYYY-MM-DD HH:MM:SS' or ISO 8601"

    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_timestamp(text)


def test_parse_timestamp_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="malformed date 20240101: expected a string"):
        parse_timestamp(20240101)  # type: ignore[arg-type]


def test_range_normalises_bounds_to_utc() -> None:
    period = DateTimeRange(datetime(2024, 1, 1, 1, tzinfo=CET), datetime(2024, 1, 2, tzinfo=UTC))

    assert period.start == utc(2024, 1, 1)
    assert period.start.tzinfo is UTC
    assert period.end.tzinfo is UTC


def test_range_accepts_pandas_timestamps() -> None:
    period = DateTimeRange(
        pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02T01:00+01:00")
    )

    assert (period.start, period.end) == (utc(2024, 1, 1), utc(2024, 1, 2))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (utc(2024, 1, 2), utc(2024, 1, 1)),
        (utc(2024, 1, 1), utc(2024, 1, 1)),
        (datetime(2024, 1, 1, 1, tzinfo=CET), utc(2024, 1, 1)),
    ],
)
def test_range_rejects_start_not_before_end(start: datetime, end: datetime) -> None:
    message = (
        f"start must be before end, got start={start.astimezone(UTC).isoformat()} "
        f"end={end.isoformat()}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        DateTimeRange(start, end)


@pytest.mark.parametrize(
    ("start", "end", "name"),
    [
        (datetime(2024, 1, 1), utc(2024, 1, 2), "start"),
        (utc(2024, 1, 1), datetime(2024, 1, 2), "end"),
    ],
)
def test_range_rejects_naive_datetimes(start: datetime, end: datetime, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be timezone-aware, got naive 2024-01-0"):
        DateTimeRange(start, end)


def test_range_rejects_non_datetimes() -> None:
    with pytest.raises(TypeError, match="start must be a datetime, got str"):
        DateTimeRange("2024-01-01", utc(2024, 1, 2))  # type: ignore[arg-type]


def test_range_is_immutable() -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 2))

    with pytest.raises(dataclasses.FrozenInstanceError):
        period.start = utc(2023, 1, 1)  # type: ignore[misc]


def test_parse_builds_range_from_both_formats() -> None:
    period = DateTimeRange.parse("2024-01-01 00:00:00", "2024-01-01T02:00:00+01:00")

    assert period == DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 1, 1))


def test_parse_names_the_malformed_bound() -> None:
    with pytest.raises(ValueError, match=r"^malformed date '2024-13-01'"):
        DateTimeRange.parse("2024-01-01 00:00:00", "2024-13-01")


def test_parse_rejects_start_after_end() -> None:
    with pytest.raises(ValueError, match=r"^start must be before end, got start=2024-01-02T00"):
        DateTimeRange.parse("2024-01-02", "2024-01-01")


def test_duration() -> None:
    period = DateTimeRange.parse("2024-02-28 00:00:00", "2024-03-01 06:00:00")

    assert period.duration == timedelta(days=2, hours=6)


def test_contains_is_half_open() -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 2))

    assert utc(2024, 1, 1) in period
    assert utc(2024, 1, 1, 23, 59, 59, 999_999) in period
    assert utc(2024, 1, 2) not in period
    assert utc(2023, 12, 31, 23, 59) not in period
    assert datetime(2024, 1, 1, 0, 30, tzinfo=CET) not in period  # 2023-12-31 23:30 UTC
    assert datetime(2024, 1, 2, 0, 30, tzinfo=CET) in period  # 2024-01-01 23:30 UTC


def test_contains_rejects_naive_datetimes_and_other_types() -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 2))

    with pytest.raises(ValueError, match="timezone-aware"):
        _ = datetime(2024, 1, 1, 12) in period
    with pytest.raises(TypeError, match="expected a datetime, got str"):
        _ = "2024-01-01" in period


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ((utc(2024, 1, 2), utc(2024, 1, 5)), (utc(2024, 1, 2), utc(2024, 1, 3))),
        ((utc(2023, 12, 1), utc(2024, 1, 2)), (utc(2024, 1, 1), utc(2024, 1, 2))),
        ((utc(2024, 1, 1, 6), utc(2024, 1, 1, 7)), (utc(2024, 1, 1, 6), utc(2024, 1, 1, 7))),
        ((utc(2023, 1, 1), utc(2025, 1, 1)), (utc(2024, 1, 1), utc(2024, 1, 3))),
        ((utc(2024, 1, 3), utc(2024, 1, 4)), None),
        ((utc(2023, 12, 1), utc(2024, 1, 1)), None),
        ((utc(2024, 2, 1), utc(2024, 2, 2)), None),
    ],
)
def test_intersection_and_overlaps(
    other: tuple[datetime, datetime], expected: tuple[datetime, datetime] | None
) -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 3))
    other_range = DateTimeRange(*other)

    result = period.intersection(other_range)

    assert result == (None if expected is None else DateTimeRange(*expected))
    assert other_range.intersection(period) == result
    assert period.overlaps(other_range) is (expected is not None)
    assert other_range.overlaps(period) is (expected is not None)


def test_split_into_equal_chunks() -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 4))

    assert period.split(timedelta(days=1)) == [
        DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 2)),
        DateTimeRange(utc(2024, 1, 2), utc(2024, 1, 3)),
        DateTimeRange(utc(2024, 1, 3), utc(2024, 1, 4)),
    ]


def test_split_leaves_a_shorter_last_chunk() -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 1, 5))

    assert period.split(timedelta(hours=2)) == [
        DateTimeRange(utc(2024, 1, 1, 0), utc(2024, 1, 1, 2)),
        DateTimeRange(utc(2024, 1, 1, 2), utc(2024, 1, 1, 4)),
        DateTimeRange(utc(2024, 1, 1, 4), utc(2024, 1, 1, 5)),
    ]


def test_split_with_step_longer_than_range_gives_the_range() -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 1, 5))

    assert period.split(timedelta(days=7)) == [period]


@pytest.mark.parametrize("step", [timedelta(0), timedelta(hours=-1)])
def test_split_rejects_non_positive_step(step: timedelta) -> None:
    period = DateTimeRange(utc(2024, 1, 1), utc(2024, 1, 2))

    with pytest.raises(ValueError, match="step must be positive"):
        period.split(step)


def test_text_forms() -> None:
    period = DateTimeRange(datetime(2024, 1, 1, 1, tzinfo=CET), utc(2024, 1, 2, 12, 30))

    assert period.to_seed_strings() == ("2024-01-01 00:00:00", "2024-01-02 12:30:00")
    assert period.isoformat() == ("2024-01-01T00:00:00+00:00", "2024-01-02T12:30:00+00:00")
    assert str(period) == "[2024-01-01T00:00:00+00:00, 2024-01-02T12:30:00+00:00)"
    assert DateTimeRange.parse(*period.to_seed_strings()) == period
    assert DateTimeRange.parse(*period.isoformat()) == period


def test_seed_strings_refuse_fractional_seconds() -> None:
    period = DateTimeRange(utc(2024, 1, 1, 0, 0, 0, 500), utc(2024, 1, 2))

    with pytest.raises(ValueError, match="fractional seconds"):
        period.to_seed_strings()
