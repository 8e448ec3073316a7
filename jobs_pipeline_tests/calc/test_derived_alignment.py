"""Aligning a derived feature's inputs: equal timestamps, else the nearest sample within half a
sampling period, else no data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from jobs_pipeline.calc.derived import align_to, derive_values
from jobs_pipeline.calc.expressions import parse_expression

TEN_MIN = timedelta(minutes=10)


def series(stamps: list[str], values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)))


def test_equal_timestamps_then_nearest_within_half_a_period_else_nan() -> None:
    index = pd.DatetimeIndex(
        pd.to_datetime(
            ["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01 00:20", "2024-01-01 00:30"],
            utc=True,
        )
    )
    values = series(
        [
            "2024-01-01 00:00:00",  # equal
            "2024-01-01 00:09:00",  # 1 min before 00:10 (00:16 is 6 min after): nearest wins
            "2024-01-01 00:16:00",
            "2024-01-01 00:35:00",  # exactly half a period after 00:30: still counts
        ],
        [1.0, 2.0, 3.0, 4.0],
    )
    # 00:20 has 00:16 (4 min) within 5 min.
    np.testing.assert_array_equal(align_to(index, values, TEN_MIN / 2), [1.0, 2.0, 3.0, 4.0])
    # With half of 6 minutes, 00:20 has nothing within 3 min, 00:30 nothing within 3 min.
    np.testing.assert_array_equal(
        align_to(index, values, timedelta(minutes=3)), [1.0, 2.0, np.nan, np.nan]
    )


def test_a_stored_nan_at_the_same_timestamp_is_not_replaced_by_a_neighbour() -> None:
    index = pd.DatetimeIndex(pd.to_datetime(["2024-01-01 00:10"], utc=True))
    values = series(["2024-01-01 00:09", "2024-01-01 00:10"], [5.0, np.nan])
    assert np.isnan(align_to(index, values, TEN_MIN / 2)).all()


def test_derived_values_on_the_first_inputs_timestamps_exact_by_hand() -> None:
    stamps = pd.date_range("2024-01-01", periods=6, freq="10min", tz="UTC")
    voltage = pd.Series([600.0, 610.0, np.nan, 630.0, 640.0, 650.0], index=stamps)
    # Current jittered by +40 s, one sample missing, one 6 min off (beyond half a period).
    current_stamps = [stamps[0], stamps[1] + pd.Timedelta(seconds=40), stamps[2], stamps[4]]
    current_stamps.append(stamps[5] + pd.Timedelta(minutes=6))
    current = pd.Series([10.0, 11.0, 12.0, 14.0, 15.0], index=pd.DatetimeIndex(current_stamps))
    derived = derive_values(
        parse_expression("dc_voltage * dc_current / 1000"),
        {"dc_voltage": voltage, "dc_current": current},
        {"dc_voltage": TEN_MIN, "dc_current": TEN_MIN},
    )
    expected = pd.Series(
        [600 * 10 / 1000, 610 * 11 / 1000, np.nan, np.nan, 640 * 14 / 1000, np.nan], index=stamps
    )
    pd.testing.assert_series_equal(derived, expected)
