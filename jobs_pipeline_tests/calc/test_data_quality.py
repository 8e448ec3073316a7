from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.calc import DataQuality, DateTimeRange, assess_data_quality, format_duration

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NAN = np.nan
TEN_MINUTES = timedelta(minutes=10)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stamped(minutes: Sequence[float], values: Sequence[float] | None = None) -> pd.Series:
    index = pd.DatetimeIndex([at(m) for m in minutes], dtype="datetime64[us, UTC]")
    return pd.Series(values if values is not None else [1.0] * len(minutes), index=index)


def quality(
    values: pd.Series, start: float = 0, end: float = 120, sampling: timedelta = TEN_MINUTES
) -> DataQuality:
    return assess_data_quality(values, DateTimeRange(at(start), at(end)), sampling)


def figures(found: DataQuality) -> tuple[int, int, int, float, float]:
    """(samples, NaN samples, gaps, gap minutes, coverage percent)."""
    return (
        found.samples,
        found.nan_samples,
        found.gaps,
        found.gap_duration / timedelta(minutes=1),
        found.coverage_percent,
    )


def test_a_full_regular_grid_covers_the_whole_period() -> None:
    assert figures(quality(stamped(range(0, 120, 10)))) == (12, 0, 0, 0.0, 100.0)


def test_an_offset_grid_misses_only_the_start_of_the_period() -> None:
    # :05, :15, ..., 01:55: nothing read covers [00:00, 00:05); the last sample reaches the end.
    found = quality(stamped(range(5, 120, 10)))

    assert figures(found) == (12, 0, 1, 5.0, pytest.approx(115 / 120 * 100))


def test_jittered_stamps_cover_from_one_to_the_next() -> None:
    found = quality(stamped([0.5, 10.25, 19.75, 30.6, 40.0, 49.5]), end=60)

    # [0.5, 59.5) is covered; 0.5 min at the start and 0.5 min at the end are not.
    assert figures(found) == (6, 0, 2, pytest.approx(1.0), pytest.approx(59 / 60 * 100))


def test_holes_up_to_one_and_a_half_periods_are_covered_longer_ones_are_gaps() -> None:
    exactly = quality(stamped([0, 10, 25, 35, 45]), end=55)
    just_over = quality(stamped([0, 10, 25.5, 35.5, 45.5]), end=55.5)

    assert figures(exactly) == (5, 0, 0, 0.0, 100.0)
    # 10 covers [10, 20); nothing covers [20, 25.5).
    assert figures(just_over) == (5, 0, 1, 5.5, pytest.approx(50 / 55.5 * 100))


def test_gaps_are_counted_and_summed_including_the_end_of_the_period() -> None:
    found = quality(stamped([0, 10, 20, 60, 70]), end=120)

    # [30, 60) and [80, 120).
    assert figures(found) == (5, 0, 2, 70.0, pytest.approx(50 / 120 * 100))


def test_nan_samples_are_not_coverage_but_not_gaps_either() -> None:
    found = quality(stamped(range(0, 120, 10), [1.0, NAN, NAN, *[1.0] * 9]))

    assert figures(found) == (12, 2, 0, 0.0, pytest.approx(100 / 120 * 100))


def test_samples_denser_than_the_sampling_period() -> None:
    found = quality(stamped(range(0, 60, 2), [NAN, *[1.0] * 29]), end=60)

    assert figures(found) == (30, 1, 0, 0.0, pytest.approx(58 / 60 * 100))


def test_only_samples_in_the_period_count() -> None:
    values = stamped([-10, 0, 10, 20, 30])

    # [5, 25): 10 and 20 are read; the sample at 0 is not, so [5, 10) is a gap.
    assert figures(quality(values, start=5, end=25)) == (2, 0, 1, 5.0, 75.0)


def test_no_samples_is_one_gap_over_the_whole_period() -> None:
    empty = pd.Series([], index=pd.DatetimeIndex([], tz=UTC), dtype="float64")

    assert figures(quality(empty)) == (0, 0, 1, 120.0, 0.0)
    assert figures(quality(stamped([200]))) == (0, 0, 1, 120.0, 0.0)


def test_any_index_unit_and_a_sampling_period_the_unit_cannot_express() -> None:
    values = stamped(range(0, 120, 10))
    values.index = values.index.as_unit("s")

    found = quality(values, sampling=timedelta(minutes=10, milliseconds=1))

    assert figures(found) == (12, 0, 0, 0.0, 100.0)


def test_low_coverage_note_names_the_coverage_and_the_gaps() -> None:
    # Seven and a half hours of a day: 31.25 %, shown rounded down.
    day = quality(stamped(range(0, 450, 10)), end=24 * 60)
    nan_only = quality(stamped(range(0, 120, 10), [NAN] * 7 + [1.0] * 5))

    assert day.low_coverage_note(50.0) == "coverage 31.2 % (gaps 16 h 30 min)"
    assert day.low_coverage_note(31.25) is None
    assert day.low_coverage_note(31.26) == "coverage 31.2 % (gaps 16 h 30 min)"
    assert nan_only.low_coverage_note(50.0) == "coverage 41.6 % (7 NaN samples)"


def test_low_coverage_just_below_the_threshold_is_not_shown_as_the_threshold() -> None:
    found = quality(stamped(range(0, 1200, 10)), end=1200 + 1 / 60)

    assert found.coverage_percent < 100.0
    assert found.low_coverage_note(100.0) == "coverage 99.9 % (gaps 1 s)"


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=16, minutes=30), "16 h 30 min"),
        (timedelta(days=2, minutes=5), "2 d 5 min"),
        (timedelta(minutes=1, seconds=0.4), "1 min"),
        (timedelta(seconds=59.99999), "1 min"),
        (timedelta(hours=8, minutes=19, seconds=59.99998), "8 h 20 min"),
        (timedelta(seconds=45), "45 s"),
        (timedelta(milliseconds=500), "0.5 s"),
        (timedelta(0), "0 s"),
    ],
)
def test_format_duration(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_rejects_a_sampling_period_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="sampling_period must be positive"):
        quality(stamped([0]), sampling=timedelta(0))
