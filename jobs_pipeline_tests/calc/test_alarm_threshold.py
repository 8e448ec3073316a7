from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.calc import (
    FRAME_COLUMNS,
    AlarmCalcThreshold,
    AlarmOccurrenceSpan,
    DateTimeRange,
    OccurrenceArrays,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NAN = np.nan
# Ten samples at 00:00, 00:10, ..., 01:30, read by all operators below.
VALUES = [1.0, 5.0, 5.0, 2.0, 7.0, 7.0, 7.0, 0.0, 5.0, 9.0]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def series(
    values: Sequence[float], *, start: int = 0, step: int = 10, drop: Sequence[int] = ()
) -> pd.Series:
    """Samples every ``step`` minutes from ``start``; ``drop`` lists minutes without a sample."""
    stamps = [at(start + i * step) for i in range(len(values))]
    kept = [(t, v) for t, v in zip(stamps, values, strict=True) if t not in {at(m) for m in drop}]
    index = pd.DatetimeIndex([t for t, _ in kept], dtype="datetime64[us, UTC]")
    return pd.Series([v for _, v in kept], index=index, dtype="float64")


def period(start: float, end: float) -> DateTimeRange:
    return DateTimeRange(at(start), at(end))


def found(
    alarm: AlarmCalcThreshold, values: pd.Series, within: DateTimeRange | None = None
) -> list[tuple[float, float, float]]:
    """Occurrences as (start minute, end minute, peak), checking both result forms agree."""
    within = within or period(0, 24 * 60)
    spans = alarm.find_occurrences(values, within)
    frame = alarm.find_occurrences_frame(values, within)
    arrays = alarm.find_occurrences_arrays(values, within)
    as_minutes = [
        ((s.start - T0) / timedelta(minutes=1), (s.end - T0) / timedelta(minutes=1), s.peak_value)
        for s in spans
    ]
    as_timestamps = [(pd.Timestamp(s.start), pd.Timestamp(s.end), s.peak_value) for s in spans]
    assert list(frame.itertuples(index=False, name=None)) == as_timestamps
    assert [
        (pd.Timestamp(start, tz=UTC), pd.Timestamp(end, tz=UTC), peak)
        for start, end, peak in zip(*arrays, strict=True)
    ] == as_timestamps
    return as_minutes


def alarm(operator: str, threshold: float, **options: object) -> AlarmCalcThreshold:
    return AlarmCalcThreshold(operator=operator, threshold=threshold, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("operator", "threshold", "expected"),
    [
        (">", 5, [(40, 70, 7.0), (90, 100, 9.0)]),
        (">=", 5, [(10, 30, 5.0), (40, 70, 7.0), (80, 100, 9.0)]),
        ("<", 2, [(0, 10, 1.0), (70, 80, 0.0)]),
        ("<=", 2, [(0, 10, 1.0), (30, 40, 2.0), (70, 80, 0.0)]),
        ("==", 7, [(40, 70, 7.0)]),
        ("!=", 5, [(0, 10, 1.0), (30, 80, 0.0), (90, 100, 9.0)]),
    ],
)
def test_every_operator(
    operator: str, threshold: float, expected: list[tuple[float, float, float]]
) -> None:
    assert found(alarm(operator, threshold), series(VALUES)) == expected


def test_not_equal_peak_is_furthest_from_threshold_larger_on_a_tie() -> None:
    values = series([3.0, 6.0, 1.0, 5.0, 7.0, 3.0])

    assert found(alarm("!=", 5), values) == [(0, 30, 1.0), (40, 60, 7.0)]


def test_equal_matches_exactly_only() -> None:
    values = series([0.1 + 0.2, 0.3, 0.30000000000000004])

    assert found(alarm("==", 0.3), values) == [(10, 20, 0.3)]


def test_result_types() -> None:
    values = series([9.0, 9.0, 0.0])

    (span,) = alarm(">", 5).find_occurrences(values, period(0, 30))
    frame = alarm(">", 5).find_occurrences_frame(values, period(0, 30))

    assert span == AlarmOccurrenceSpan(start=at(0), end=at(20), peak_value=9.0)
    assert span.start.tzinfo is UTC
    assert span.end.tzinfo is UTC
    assert type(span.peak_value) is float
    assert span.duration == timedelta(minutes=20)
    expected = pd.DataFrame(
        {
            "start": pd.DatetimeIndex([at(0)], dtype="datetime64[ns, UTC]"),
            "end": pd.DatetimeIndex([at(20)], dtype="datetime64[ns, UTC]"),
            "peak_value": [9.0],
        }
    )
    pd.testing.assert_frame_equal(frame, expected)


# Hysteresis ----------------------------------------------------------------------------------


def test_hysteresis_above() -> None:
    # Violates (> 8) at 10, 50 and 80; stays active while > 4.
    values = series([5.0, 9.0, 6.0, 5.0, 4.0, 9.0, 3.0, 6.0, 10.0, 5.0])

    assert found(alarm(">", 8, clear_threshold=4), values) == [
        (10, 40, 9.0),
        (50, 60, 9.0),
        (80, 100, 10.0),
    ]


def test_hysteresis_above_inclusive_operator_keeps_the_clear_value() -> None:
    values = series([5.0, 9.0, 6.0, 5.0, 4.0, 9.0, 3.0, 6.0, 10.0, 5.0])

    assert found(alarm(">=", 8, clear_threshold=4), values) == [
        (10, 60, 9.0),
        (80, 100, 10.0),
    ]


def test_hysteresis_below() -> None:
    # Violates (< 0) at 10, 50 and 80; stays active while < 3.
    values = series([2.0, -1.0, 1.0, 2.5, 3.0, -2.0, 4.0, 1.0, -1.0, 2.0])

    assert found(alarm("<", 0, clear_threshold=3), values) == [
        (10, 40, -1.0),
        (50, 60, -2.0),
        (80, 100, -1.0),
    ]


def test_hysteresis_below_inclusive_operator_keeps_the_clear_value() -> None:
    values = series([2.0, -1.0, 1.0, 2.5, 3.0, -2.0, 4.0, 1.0, 0.0, 2.0])

    assert found(alarm("<=", 0, clear_threshold=3), values) == [
        (10, 60, -2.0),
        (80, 100, 0.0),
    ]


def test_hysteresis_never_starts_on_a_clear_only_sample() -> None:
    values = series([6.0, 7.0, 6.0, 3.0, 6.0])

    assert found(alarm(">", 8, clear_threshold=4), values) == []


def test_hysteresis_ends_at_nan_and_at_a_gap() -> None:
    with_nan = series([9.0, 6.0, NAN, 6.0, 9.0, 6.0])
    with_gap = series([9.0, 6.0, 6.0, 6.0, 9.0, 6.0], drop=[20])

    expected = [(0, 20, 9.0), (40, 60, 9.0)]
    assert found(alarm(">", 8, clear_threshold=4), with_nan) == expected
    assert found(alarm(">", 8, clear_threshold=4), with_gap) == expected


def test_clear_threshold_equal_to_threshold_is_no_hysteresis() -> None:
    values = series(VALUES)

    assert found(alarm(">", 5, clear_threshold=5), values) == found(alarm(">", 5), values)


# Minimum duration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, [(10, 20, 9.0), (30, 50, 9.0), (60, 90, 9.0)]),
        (19.99, [(30, 50, 9.0), (60, 90, 9.0)]),
        (20, [(30, 50, 9.0), (60, 90, 9.0)]),
        (20.01, [(60, 90, 9.0)]),
        (30, [(60, 90, 9.0)]),
        (31, []),
    ],
)
def test_min_duration_drops_shorter_occurrences_only(
    minutes: float, expected: list[tuple[float, float, float]]
) -> None:
    values = series([0.0, 9.0, 0.0, 9.0, 9.0, 0.0, 9.0, 9.0, 9.0, 0.0])
    rule = alarm(">", 5, min_duration=timedelta(minutes=minutes))

    assert found(rule, values) == expected


def test_min_duration_counts_the_clipped_length() -> None:
    values = series([0.0, 9.0, 9.0, 9.0])

    rule = alarm(">", 5, min_duration=timedelta(minutes=25))

    assert found(rule, values, period(0, 34)) == []
    assert found(rule, values, period(0, 35)) == [(10, 35, 9.0)]


def test_min_duration_applies_to_the_whole_hysteresis_occurrence() -> None:
    values = series([9.0, 6.0, 6.0, 0.0])
    rule = alarm(">", 8, clear_threshold=4, min_duration=timedelta(minutes=30))

    assert found(rule, values) == [(0, 30, 9.0)]


# No data ---------------------------------------------------------------------------------


def test_nan_inside_a_run_ends_the_occurrence() -> None:
    assert found(alarm(">", 5), series([9.0, 9.0, NAN, 9.0])) == [(0, 20, 9.0), (30, 40, 9.0)]


def test_missing_timestamp_inside_a_run_ends_the_occurrence() -> None:
    values = series([9.0, 9.0, 9.0, 9.0], drop=[20])

    assert found(alarm(">", 5), values) == [(0, 20, 9.0), (30, 40, 9.0)]


def test_nan_never_violates_any_operator() -> None:
    values = series([NAN, NAN])

    for operator in (">", ">=", "<", "<=", "==", "!="):
        assert found(alarm(operator, 0), values) == []


def test_nan_at_both_edges() -> None:
    assert found(alarm(">", 5), series([NAN, 9.0, 9.0, NAN])) == [(10, 30, 9.0)]
    assert found(alarm("!=", 5), series([NAN, 9.0, 1.0, NAN])) == [(10, 30, 9.0)]


def test_missing_samples_at_both_edges_of_the_period() -> None:
    values = series([9.0, 9.0, 9.0], start=20)

    assert found(alarm(">", 5), values, period(0, 90)) == [(20, 50, 9.0)]


def test_occurrence_ends_at_a_gap_not_at_the_period_end() -> None:
    values = series([0.0, 9.0, 9.0])

    assert found(alarm(">", 5), values, period(0, 60)) == [(10, 30, 9.0)]


# Timestamps off the grid --------------------------------------------------------------------


def stamped(minutes: Sequence[float], values: Sequence[float]) -> pd.Series:
    """Samples at the given minutes after T0 (any minute, not only a 10-minute grid)."""
    index = pd.DatetimeIndex([at(m) for m in minutes], dtype="datetime64[us, UTC]")
    return pd.Series(values, index=index, dtype="float64")


def test_offset_grid_counts_every_sample() -> None:
    # 10-minute samples at :05, :15, ...: each covers ten minutes from its own stamp.
    values = series([0.0, 9.0, 9.0, 0.0, 9.0, 9.0, 9.0], start=5)

    assert found(alarm(">", 5), values) == [(15, 35, 9.0), (45, 75, 9.0)]


def test_jittered_samples_cover_up_to_the_next_one() -> None:
    # Stamps a few tens of seconds off the 10-minute grid.
    minutes = [0.5, 10.25, 19.75, 30.6, 40.0, 49.5]
    values = stamped(minutes, [0.0, 9.0, 8.0, 7.0, 0.0, 6.0])

    assert found(alarm(">", 5), values) == [(10.25, 40.0, 9.0), (49.5, 59.5, 6.0)]


def test_a_hole_of_exactly_one_and_a_half_periods_is_contiguous() -> None:
    values = stamped([0, 10, 25, 35], [0.0, 9.0, 9.0, 0.0])

    assert found(alarm(">", 5), values) == [(10, 35, 9.0)]


def test_a_hole_just_over_one_and_a_half_periods_is_a_gap() -> None:
    values = stamped([0, 10, 25 + 1 / 60_000_000, 35], [0.0, 9.0, 9.0, 0.0])

    [first, second] = alarm(">", 5).find_occurrences(values, period(0, 60))
    assert (first.start, first.end) == (at(10), at(20))
    assert second.start == at(25) + timedelta(microseconds=1)
    assert second.end == at(35)


def test_a_gap_ends_the_occurrence_one_period_after_its_last_sample() -> None:
    # Hysteresis does not bridge a gap: the sample after it must violate again to start anew.
    values = stamped([0, 10, 40, 47], [9.0, 6.0, 6.0, 9.0])
    rule = alarm(">", 8, clear_threshold=4)

    assert found(rule, values) == [(0, 20, 9.0), (47, 57, 9.0)]


def test_a_period_end_between_two_samples_clips_the_occurrence() -> None:
    values = stamped([0, 7, 16, 26, 37], [0.0, 9.0, 9.0, 9.0, 9.0])

    # Before 37 the sample at 26 is the last one read: it covers one period, to 36.
    assert found(alarm(">", 5), values, period(0, 30)) == [(7, 30, 9.0)]
    assert found(alarm(">", 5), values, period(0, 33)) == [(7, 33, 9.0)]
    assert found(alarm(">", 5), values, period(3, 37)) == [(7, 36, 9.0)]
    # With 37 read, 26 covers up to it.
    assert found(alarm(">", 5), values, period(0, 40)) == [(7, 40, 9.0)]
    # Starting between samples: the first sample read is the one at 7.
    assert found(alarm(">", 5), values, period(1, 20)) == [(7, 20, 9.0)]


def test_samples_denser_than_the_sampling_period() -> None:
    # Every 2 minutes against a 10-minute sampling period: each covers up to the next one.
    values = series([0.0, 9.0, 9.0, 9.0, 0.0, 9.0, 0.0], step=2)

    assert found(alarm(">", 5), values) == [(2, 8, 9.0), (10, 12, 9.0)]
    rule = alarm(">", 5, min_duration=timedelta(minutes=5))
    assert found(rule, values) == [(2, 8, 9.0)]


def test_irregular_spacing_with_holes() -> None:
    # One to fourteen minutes apart; 14 > 1.5 x 9 is a gap for a 9-minute sampling period.
    minutes = [0, 1, 5, 19, 20, 33, 45]
    values = stamped(minutes, [9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0])
    rule = alarm(">", 5, sampling_period=timedelta(minutes=9))

    assert found(rule, values) == [(0, 14, 9.0), (19, 54, 9.0)]


def test_grid_follows_the_sampling_period() -> None:
    hourly = series([9.0, 9.0, 0.0, 9.0], start=0, step=60)
    hourly_off_the_hour = series([9.0, 9.0], start=30, step=60)
    rule = alarm(">", 5, sampling_period=timedelta(hours=1))

    assert found(rule, hourly) == [(0, 120, 9.0), (180, 240, 9.0)]
    assert found(rule, hourly_off_the_hour) == [(30, 150, 9.0)]


# Period --------------------------------------------------------------------------------------


def test_occurrence_running_to_the_period_end_is_clipped() -> None:
    values = series([0.0, 0.0, 9.0, 9.0, 9.0])

    assert found(alarm(">", 5), values, period(0, 45)) == [(20, 45, 9.0)]
    assert found(alarm(">", 5), values, period(0, 40)) == [(20, 40, 9.0)]


def test_samples_outside_the_period_are_ignored() -> None:
    values = series([9.0, 9.0, 2.0, 2.0, 12.0, 12.0])

    assert found(alarm(">", 5), values, period(15, 40)) == []
    assert found(alarm(">", 5), values, period(10, 40)) == [(10, 20, 9.0)]
    assert found(alarm(">", 5), values, period(5, 41)) == [(10, 20, 9.0), (40, 41, 12.0)]
    assert found(alarm("<", 5), values, period(20, 40)) == [(20, 40, 2.0)]


def test_single_sample_occurrence() -> None:
    assert found(alarm(">", 5), series([0.0, 0.0, 0.0, 9.0, 0.0])) == [(30, 40, 9.0)]


def test_no_violation_gives_no_occurrence() -> None:
    assert found(alarm(">", 50), series(VALUES)) == []


def test_empty_series_and_empty_period() -> None:
    empty_utc = pd.Series([], index=pd.DatetimeIndex([], tz=UTC), dtype="float64")
    empty_plain = pd.Series([], dtype="float64")

    assert found(alarm(">", 5), empty_utc) == []
    assert found(alarm(">", 5), empty_plain) == []
    assert found(alarm(">", 5), series(VALUES), period(200, 300)) == []
    assert found(alarm(">", 5), series(VALUES), period(-60, 0)) == []


def test_arrays_form() -> None:
    arrays = alarm(">", 5).find_occurrences_arrays(series(VALUES), period(0, 95))

    assert isinstance(arrays, OccurrenceArrays)
    np.testing.assert_array_equal(
        arrays.start, np.array(["2024-01-01T00:40", "2024-01-01T01:30"], dtype="M8[ns]")
    )
    np.testing.assert_array_equal(
        arrays.end, np.array(["2024-01-01T01:10", "2024-01-01T01:35"], dtype="M8[ns]")
    )
    np.testing.assert_array_equal(arrays.peak_value, np.array([7.0, 9.0]))
    assert arrays.start.dtype == arrays.end.dtype == np.dtype("M8[ns]")


def test_empty_arrays_have_the_dtypes() -> None:
    arrays = alarm(">", 50).find_occurrences_arrays(series(VALUES), period(0, 100))

    assert [(len(a), a.dtype) for a in arrays] == [
        (0, np.dtype("M8[ns]")),
        (0, np.dtype("M8[ns]")),
        (0, np.dtype("float64")),
    ]


def test_empty_frame_has_the_columns_and_dtypes() -> None:
    frame = alarm(">", 50).find_occurrences_frame(series(VALUES), period(0, 100))

    assert tuple(frame.columns) == FRAME_COLUMNS
    assert frame.dtypes.to_dict() == {
        "start": pd.DatetimeTZDtype("ns", UTC),
        "end": pd.DatetimeTZDtype("ns", UTC),
        "peak_value": np.dtype("float64"),
    }
    assert len(frame) == 0


# Input forms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_any_index_unit(unit: str) -> None:
    values = series(VALUES)
    values.index = values.index.as_unit(unit)

    assert found(alarm(">", 5), values, period(0, 95)) == [(40, 70, 7.0), (90, 95, 9.0)]


def test_sampling_period_finer_than_the_index_unit() -> None:
    # Whole-second stamps, a 1.5 s grid: 00:00:00 and 00:00:03 are on it, two slots apart.
    index = pd.DatetimeIndex([at(0), at(0.05)], dtype="datetime64[s, UTC]")
    values = pd.Series([9.0, 9.0], index=index)
    rule = alarm(">", 5, sampling_period=timedelta(milliseconds=1500))

    spans = rule.find_occurrences(values, period(0, 10))

    assert [(s.start, s.end) for s in spans] == [
        (at(0), at(0) + timedelta(seconds=1.5)),
        (at(0.05), at(0.05) + timedelta(seconds=1.5)),
    ]


def test_index_in_another_time_zone() -> None:
    values = series(VALUES)
    values.index = values.index.tz_convert("Europe/Berlin")

    assert found(alarm(">", 5), values) == [(40, 70, 7.0), (90, 100, 9.0)]


def test_nullable_and_integer_values() -> None:
    nullable = series([9.0, 9.0, 9.0]).astype("Float64")
    nullable.iloc[1] = pd.NA
    integers = series([9.0, 9.0, 0.0]).astype("int64")

    assert found(alarm(">", 5), nullable) == [(0, 10, 9.0), (20, 30, 9.0)]
    assert found(alarm(">", 5), integers) == [(0, 20, 9.0)]


def test_sub_microsecond_timestamps_are_kept_in_the_frame() -> None:
    index = pd.DatetimeIndex([pd.Timestamp(at(0)).as_unit("ns") + pd.Timedelta(1, "ns")])
    values = pd.Series([9.0], index=index)
    rule = alarm(">", 5, sampling_period=pd.Timedelta(1, "ns"))

    frame = rule.find_occurrences_frame(values, period(0, 10))

    assert frame["start"].tolist() == [index[0]]
    assert frame["end"].tolist() == [index[0] + pd.Timedelta(1, "ns")]


def test_rejects_naive_index() -> None:
    values = series(VALUES)
    values.index = values.index.tz_localize(None)

    with pytest.raises(ValueError, match="timezone-aware DatetimeIndex"):
        alarm(">", 5).find_occurrences(values, period(0, 100))


def test_rejects_other_index_and_other_inputs() -> None:
    with pytest.raises(TypeError, match="must have a DatetimeIndex, got RangeIndex"):
        alarm(">", 5).find_occurrences(pd.Series([1.0]), period(0, 100))
    with pytest.raises(TypeError, match="values must be a pandas Series, got list"):
        alarm(">", 5).find_occurrences([1.0], period(0, 100))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="period must be a DateTimeRange, got tuple"):
        alarm(">", 5).find_occurrences(series(VALUES), (at(0), at(10)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "stamps", [[0, 20, 10], [0, 10, 10]], ids=["out of order", "duplicate timestamp"]
)
def test_rejects_unordered_timestamps_among_violating_samples(stamps: list[int]) -> None:
    index = pd.DatetimeIndex([at(m) for m in stamps], dtype="datetime64[us, UTC]")
    values = pd.Series([9.0, 9.0, 9.0], index=index)

    with pytest.raises(ValueError, match="strictly increasing"):
        alarm(">", 5).find_occurrences(values, period(0, 30))


# Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"operator": "=>", "threshold": 1}, "unknown operator '=>'"),
        ({"operator": "gt", "threshold": 1}, "unknown operator 'gt'"),
        ({"operator": "==", "threshold": 1, "clear_threshold": 1}, "only allowed with"),
        ({"operator": "!=", "threshold": 1, "clear_threshold": 0}, "not with '!='"),
        (
            {"operator": ">", "threshold": 1, "clear_threshold": 2},
            "clear_threshold 2.0 must be <= threshold 1.0 for operator '>'",
        ),
        ({"operator": ">=", "threshold": 1, "clear_threshold": 1.5}, "must be <= threshold"),
        (
            {"operator": "<", "threshold": 1, "clear_threshold": 0},
            "clear_threshold 0.0 must be >= threshold 1.0 for operator '<'",
        ),
        ({"operator": "<=", "threshold": 1, "clear_threshold": 0.5}, "must be >= threshold"),
        ({"operator": ">", "threshold": float("nan")}, "threshold must be finite"),
        ({"operator": ">", "threshold": float("inf")}, "threshold must be finite"),
        ({"operator": ">", "threshold": "5"}, "threshold must be a number, got '5'"),
        ({"operator": ">", "threshold": True}, "threshold must be a number"),
        ({"operator": ">", "threshold": None}, "threshold must be a number"),
        ({"operator": ">", "threshold": 1, "clear_threshold": float("nan")}, "must be finite"),
        (
            {"operator": ">", "threshold": 1, "min_duration": timedelta(seconds=-1)},
            "min_duration must be a timedelta >= 0",
        ),
        ({"operator": ">", "threshold": 1, "min_duration": 60}, "min_duration must be"),
        (
            {"operator": ">", "threshold": 1, "sampling_period": timedelta(0)},
            "sampling_period must be a positive timedelta",
        ),
        (
            {"operator": ">", "threshold": 1, "sampling_period": timedelta(minutes=-10)},
            "sampling_period must be a positive timedelta",
        ),
    ],
)
def test_validation(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlarmCalcThreshold(**options)  # type: ignore[arg-type]


def test_numbers_are_normalised_to_float() -> None:
    clear = Decimal("2.5")  # what a Numeric column gives

    rule = AlarmCalcThreshold(operator=">", threshold=5, clear_threshold=clear)  # type: ignore[arg-type]

    assert rule.threshold == 5.0
    assert type(rule.threshold) is float
    assert rule.clear_threshold == 2.5
    assert type(rule.clear_threshold) is float


def test_rules_compare_by_their_fields() -> None:
    first = AlarmCalcThreshold(operator=">", threshold=5, min_duration=timedelta(minutes=10))
    second = AlarmCalcThreshold(operator=">", threshold=5.0, min_duration=timedelta(seconds=600))

    assert first == second
    assert hash(first) == hash(second)
    assert repr(first) == (
        "AlarmCalcThreshold(operator='>', threshold=5.0, clear_threshold=None, "
        "min_duration=datetime.timedelta(seconds=600), "
        "sampling_period=datetime.timedelta(seconds=600))"
    )


def test_frames_from_one_rule_share_no_data() -> None:
    rule = alarm(">", 5)
    values = series([0.0, 9.0, 9.0, 0.0, 9.0, 0.0])
    first = rule.find_occurrences_frame(values, period(0, 60))
    second = rule.find_occurrences_frame(values, period(0, 60))

    first.loc[0, "end"] = pd.Timestamp("2000-01-01", tz="UTC")
    first.loc[0, "peak_value"] = -1.0

    pd.testing.assert_frame_equal(second, rule.find_occurrences_frame(values, period(0, 60)))
    assert first.loc[0, "peak_value"] == -1.0
    assert first.loc[0, "end"] == pd.Timestamp("2000-01-01", tz="UTC")


def test_frames_of_one_length_do_not_share_index_names() -> None:
    rule = alarm(">", 5)
    values = series([0.0, 9.0, 9.0, 0.0, 9.0, 0.0])
    first = rule.find_occurrences_frame(values, period(0, 60))
    second = rule.find_occurrences_frame(values, period(0, 60))

    first.index.name = "occurrence"
    first.columns.name = "field"

    assert (second.index.name, second.columns.name) == (None, None)
    assert (first.index.name, first.columns.name) == ("occurrence", "field")
