"""Which samples a period holds and how long each of them stands for.

A feature is sampled about once per sampling period, but real timestamps are rarely on the hour:
a grid can be offset (``:05``, ``:15``, ...), stamps jitter by seconds, loggers skip or bunch up.
No sample is ignored for where it falls. Instead:

* Two consecutive samples are *contiguous* when the later one is at most 1.5 sampling periods
  after the earlier one (exactly 1.5 periods is contiguous).
* A sample at ``t`` covers ``[t, next t)`` when the next sample is contiguous, otherwise
  ``[t, t + sampling period)``; from there until the next sample there is no data (a gap).

On a regular grid every sample covers ``[t, t + sampling period)``.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import numpy as np
import pandas as pd

from jobs_pipeline.calc.datetime_range import DateTimeRange

_NS_PER_UNIT: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def contiguity_limit(sampling_period_ns: int, unit_ns: int) -> int:
    """The largest distance between two contiguous timestamps, in units of ``unit_ns``.

    Args:
        sampling_period_ns: The sampling period in nanoseconds; positive.
        unit_ns: Nanoseconds per timestamp unit (1 for ``ns``, 1000 for ``us``, ...).

    Returns:
        1.5 sampling periods, rounded down to whole units: timestamps are whole units, so a
        distance ``d`` is contiguous exactly when ``d <= limit``.
    """
    return (3 * sampling_period_ns) // (2 * unit_ns)


class PeriodSamples(NamedTuple):
    """The samples of a Series inside a period, as views of its arrays where possible.

    Attributes:
        stamps: ``int64`` timestamps in units of ``unit_ns`` since the Unix epoch, in the order
            of the Series.
        values: ``float64`` values, NaN for no data.
        unit_ns: Nanoseconds per timestamp unit.
        start_ns: The period start, nanoseconds since the epoch (inclusive).
        end_ns: The period end, nanoseconds since the epoch (exclusive).
    """

    stamps: np.ndarray
    values: np.ndarray
    unit_ns: int
    start_ns: int
    end_ns: int


def samples_in_period(values: pd.Series, period: DateTimeRange) -> PeriodSamples | None:
    """The samples of ``values`` with ``period.start <= t < period.end``.

    Args:
        values: Floats (or anything that converts to float; missing values become NaN) on a
            timezone-aware `DatetimeIndex` sorted ascending. An empty Series may have any index.
        period: The half-open range to read.

    Returns:
        The samples, or None when the period holds none. Nothing is copied when the values are
        already ``float64``.

    Raises:
        TypeError: ``values`` is not a Series, its index is not a `DatetimeIndex`, or ``period``
            is not a `DateTimeRange`.
        ValueError: The index is naive.
    """
    if not isinstance(values, pd.Series):
        raise TypeError(f"values must be a pandas Series, got {type(values).__name__}")
    if not isinstance(period, DateTimeRange):
        raise TypeError(f"period must be a DateTimeRange, got {type(period).__name__}")
    if not len(values):
        return None
    index = values.index
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"values must have a DatetimeIndex, got {type(index).__name__}")
    dtype = index.dtype
    if getattr(dtype, "tz", None) is None:
        raise ValueError("values must have a timezone-aware DatetimeIndex, got a naive one")
    # The index's own unit is kept, so no timestamp array is converted, only the boundaries.
    unit_ns = _NS_PER_UNIT[dtype.unit]
    start_ns, end_ns = period.bounds_ns
    all_stamps = index.asi8
    # t * unit_ns >= bound  <=>  t >= ceil(bound / unit_ns), for integer t.
    lo, hi = all_stamps.searchsorted((-(-start_ns // unit_ns), -(-end_ns // unit_ns))).tolist()
    if lo >= hi:
        return None
    if values.dtype == np.float64:
        floats = values.to_numpy()[lo:hi]
    else:
        floats = values.iloc[lo:hi].to_numpy(dtype=np.float64, na_value=np.nan)
    return PeriodSamples(all_stamps[lo:hi], floats, unit_ns, start_ns, end_ns)
