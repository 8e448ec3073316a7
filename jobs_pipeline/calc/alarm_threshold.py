"""Threshold alarms over regularly sampled feature values, with hysteresis and minimum duration.

The calculation works on the int64 timestamps and float64 values of the Series without copying
them: one comparison over the whole period finds the samples that qualify, and all further work
is done on those (their number) and on the runs they form (the number of occurrences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, NamedTuple

import numpy as np
import pandas as pd

from jobs_pipeline.calc.datetime_range import DateTimeRange

OPERATORS: Final = (">", ">=", "<", "<=", "==", "!=")
"""Comparison operators an alarm may use, written as ``value <op> threshold``."""

_HYSTERESIS_OPERATORS: Final = (">", ">=", "<", "<=")

_COMPARISONS: Final = {
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
    "==": np.equal,
}

_NS_PER_UNIT: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND: Final = timedelta(microseconds=1)
_EMPTY_INT = np.empty(0, dtype=np.int64)

FRAME_COLUMNS: Final = ("start", "end", "peak_value")
"""Columns of `AlarmCalcThreshold.find_occurrences_frame`, in order."""


def _timedelta_ns(value: timedelta) -> int:
    """Whole nanoseconds in ``value`` (a `pandas.Timedelta` keeps its nanoseconds)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    return micros * 1_000 + int(getattr(value, "nanoseconds", 0))


def _datetime_ns(value: datetime) -> int:
    return _timedelta_ns(value - _EPOCH)


@dataclass(frozen=True, kw_only=True)
class AlarmOccurrenceSpan:
    """One occurrence of an alarm: the alarm was active during ``[start, end)``.

    Attributes:
        start: Timestamp of the first violating sample (UTC).
        end: End of the occurrence, exclusive (UTC): the start of the first sample that no longer
            qualifies, the start of a data gap, or the end of the calculated period.
        peak_value: Most extreme value during the occurrence in the violating direction, in the
            feature's unit (see `AlarmCalcThreshold`).
    """

    start: datetime
    end: datetime
    peak_value: float

    @property
    def duration(self) -> timedelta:
        """How long the alarm was active."""
        return self.end - self.start


class OccurrenceArrays(NamedTuple):
    """Occurrences as parallel numpy arrays, one element per occurrence, in chronological order.

    Attributes:
        start: ``datetime64[ns]``, UTC (numpy datetimes carry no time zone).
        end: ``datetime64[ns]``, UTC, exclusive.
        peak_value: ``float64``, in the feature's unit.
    """

    start: np.ndarray
    end: np.ndarray
    peak_value: np.ndarray


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# Shared by every empty result, hence read-only.
_NO_OCCURRENCES: Final = OccurrenceArrays(
    _read_only(np.empty(0, dtype="M8[ns]")),
    _read_only(np.empty(0, dtype="M8[ns]")),
    _read_only(np.empty(0, dtype=np.float64)),
)


@dataclass(frozen=True, kw_only=True)
class AlarmCalcThreshold:
    """A threshold alarm on one feature, evaluated over a period of regularly sampled values.

    Rules (all comparisons are ``value <op> limit``, the limit in the feature's unit):

    * Samples lie on the grid of whole sampling periods since the Unix epoch (for 10 minutes:
      ``:00``, ``:10``, ...); a sample at ``t`` stands for ``[t, t + sampling_period)``.
    * A sample *violates* when ``value <operator> threshold`` holds.
    * "No data" never violates and never keeps an alarm active: a NaN value or a grid slot
      without a sample (a gap). A sample whose timestamp is off the grid stands for no slot: it
      is ignored, and the grid samples around it still follow each other without a gap.
    * An occurrence starts at a violating sample. Without ``clear_threshold`` it stays active
      while the following samples violate. With ``clear_threshold`` (hysteresis) it stays active
      while ``value <operator> clear_threshold`` holds, with the same operator: for ``>`` the
      alarm starts above ``threshold`` and clears at or below ``clear_threshold``, for ``>=`` it
      clears below ``clear_threshold``, and mirrored for ``<`` and ``<=``. A sample that only
      satisfies the clear condition keeps an active occurrence going but never starts one.
    * An occurrence ends at the start of the first sample that no longer qualifies, at the start
      of a data gap (the end of its last qualifying sample), or at the end of the period,
      whichever comes first.
    * Occurrences shorter than ``min_duration`` are dropped; one exactly as long is kept. The
      duration is measured after clipping to the period end.
    * Only samples with ``period.start <= t < period.end`` are read.

    The peak value is the maximum during the occurrence for ``>`` and ``>=``, the minimum for
    ``<`` and ``<=``, ``threshold`` itself for ``==``, and for ``!=`` the value furthest from
    ``threshold`` (the larger value when two are equally far).

    Attributes:
        operator: One of `OPERATORS`.
        threshold: Limit that starts an occurrence, in the feature's unit; finite.
        clear_threshold: Optional limit that keeps an occurrence active, in the feature's unit;
            only for ``>``, ``>=`` (then ``<= threshold``) and ``<``, ``<=`` (then
            ``>= threshold``). Equal to ``threshold`` behaves like no hysteresis.
        min_duration: Shortest occurrence reported; zero or positive.
        sampling_period: Time between two consecutive samples of the feature; positive.

    Raises:
        ValueError: On construction, for any value outside the ranges above.
    """

    operator: str
    threshold: float
    clear_threshold: float | None = None
    min_duration: timedelta = timedelta(0)
    sampling_period: timedelta = timedelta(minutes=10)
    # Derived once on construction, so that a calculation does not redo it.
    _period_ns: int = field(init=False, repr=False, compare=False)
    _min_duration_ns: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown operator {self.operator!r}: expected one of {OPERATORS}")
        threshold = _finite_float(self.threshold, "threshold")
        object.__setattr__(self, "threshold", threshold)
        if self.clear_threshold is not None:
            clear = _finite_float(self.clear_threshold, "clear_threshold")
            if self.operator not in _HYSTERESIS_OPERATORS:
                raise ValueError(
                    f"clear_threshold is only allowed with {_HYSTERESIS_OPERATORS}, "
                    f"not with {self.operator!r}"
                )
            if self.operator in (">", ">=") and clear > threshold:
                raise ValueError(
                    f"clear_threshold {clear} must be <= threshold {threshold} "
                    f"for operator {self.operator!r}"
                )
            if self.operator in ("<", "<=") and clear < threshold:
                raise ValueError(
                    f"clear_threshold {clear} must be >= threshold {threshold} "
                    f"for operator {self.operator!r}"
                )
            object.__setattr__(self, "clear_threshold", clear)
        if not isinstance(self.min_duration, timedelta) or self.min_duration < timedelta(0):
            raise ValueError(f"min_duration must be a timedelta >= 0, got {self.min_duration!r}")
        if not isinstance(self.sampling_period, timedelta) or self.sampling_period <= timedelta(0):
            raise ValueError(
                f"sampling_period must be a positive timedelta, got {self.sampling_period!r}"
            )
        object.__setattr__(self, "_period_ns", _timedelta_ns(self.sampling_period))
        object.__setattr__(self, "_min_duration_ns", _timedelta_ns(self.min_duration))

    def find_occurrences(
        self, values: pd.Series, period: DateTimeRange
    ) -> list[AlarmOccurrenceSpan]:
        """Finds the occurrences of the alarm in ``values`` during ``period``.

        Args:
            values: The feature's values (float, in the feature's unit; NaN means no data),
                indexed by a timezone-aware `DatetimeIndex` sorted ascending without duplicates.
                Samples outside ``period`` are ignored. An empty Series may have any index.
            period: The half-open range to evaluate.

        Returns:
            The occurrences in chronological order, without overlap, with UTC datetimes (at
            microsecond resolution, as Python datetimes are).

        Raises:
            TypeError: ``values`` is not a Series or its index is not a `DatetimeIndex`.
            ValueError: The index is naive, or the samples that qualify are not in strictly
                increasing time order (the order of the others is not checked, to keep the
                calculation from reading every timestamp).
        """
        found = self.find_occurrences_arrays(values, period)
        starts = (found.start.view(np.int64) // 1_000).tolist()
        ends = (found.end.view(np.int64) // 1_000).tolist()
        peaks = found.peak_value.tolist()
        epoch, micros = _EPOCH, _ONE_MICROSECOND
        return [
            AlarmOccurrenceSpan(
                start=epoch + start * micros, end=epoch + end * micros, peak_value=peak
            )
            for start, end, peak in zip(starts, ends, peaks, strict=True)
        ]

    def find_occurrences_frame(self, values: pd.Series, period: DateTimeRange) -> pd.DataFrame:
        """Same as `find_occurrences`, as a DataFrame.

        Returns:
            One row per occurrence in chronological order, a default `RangeIndex` and the columns
            ``start`` and ``end`` (``datetime64[ns, UTC]``, ``end`` exclusive) and
            ``peak_value`` (``float64``).
        """
        found = self.find_occurrences_arrays(values, period)
        # The arrays are fresh, so the frame may own them without a copy.
        return pd.DataFrame(
            {
                "start": pd.DatetimeIndex(found.start, tz=UTC).array,
                "end": pd.DatetimeIndex(found.end, tz=UTC).array,
                "peak_value": found.peak_value,
            },
            copy=False,
        )

    def find_occurrences_arrays(self, values: pd.Series, period: DateTimeRange) -> OccurrenceArrays:
        """Same as `find_occurrences`, as numpy arrays, without building result objects.

        The two other forms wrap this one. A DataFrame costs tens of microseconds to build and
        a Python object about a microsecond per occurrence, which is as much as the scan of a
        year of 10-minute samples itself; bulk consumers can skip both.

        Returns:
            The occurrences in chronological order, without overlap; start and end with
            nanosecond resolution.
        """
        # Every step below is a whole-array numpy operation; the constant cost per call (a few
        # dozen numpy calls) is kept low on purpose, because a year of one feature takes only
        # tens of microseconds to scan.
        if not isinstance(values, pd.Series):
            raise TypeError(f"values must be a pandas Series, got {type(values).__name__}")
        if not isinstance(period, DateTimeRange):
            raise TypeError(f"period must be a DateTimeRange, got {type(period).__name__}")
        if not len(values):
            return _NO_OCCURRENCES
        index = values.index
        if not isinstance(index, pd.DatetimeIndex):
            raise TypeError(f"values must have a DatetimeIndex, got {type(index).__name__}")
        if index.tz is None:
            raise ValueError("values must have a timezone-aware DatetimeIndex, got a naive one")

        # Work in the index's own unit so that no timestamp array is converted, only the
        # boundaries. A sampling period that the unit cannot express needs nanoseconds.
        period_ns = self._period_ns
        unit_ns = _NS_PER_UNIT[index.unit]
        if period_ns % unit_ns:
            index = index.as_unit("ns")
            unit_ns = 1
        step = period_ns // unit_ns
        end_ns = _datetime_ns(period.end)
        all_ts = index.asi8
        # t * unit_ns >= bound  <=>  t >= ceil(bound / unit_ns), for integer t.
        lo = int(all_ts.searchsorted(-(-_datetime_ns(period.start) // unit_ns), side="left"))
        hi = int(all_ts.searchsorted(-(-end_ns // unit_ns), side="left"))
        if lo >= hi:
            return _NO_OCCURRENCES
        ts = all_ts[lo:hi]
        if values.dtype == np.float64:
            vals = values.to_numpy()[lo:hi]
        else:
            vals = values.iloc[lo:hi].to_numpy(dtype=np.float64, na_value=np.nan)

        # From here on only the qualifying samples ("members") are looked at: their timestamps
        # and values. An alarm qualifies for a small share of the time, so the work shrinks from
        # the whole period to the occurrences.
        if self.clear_threshold is not None:
            members = _COMPARISONS[self.operator](vals, self.clear_threshold).nonzero()[0]
        elif self.operator == "!=":
            members = (vals != self.threshold).nonzero()[0]
        else:
            members = _COMPARISONS[self.operator](vals, self.threshold).nonzero()[0]
        m_ts = ts[members]
        m_vals = vals[members]
        if self.operator == "!=":
            # NaN != threshold holds in IEEE arithmetic, but NaN is no data.
            known = m_vals == m_vals
            if np.count_nonzero(known) < len(known):
                m_ts, m_vals = m_ts[known], m_vals[known]
        if not len(m_ts):
            return _NO_OCCURRENCES

        m_ts, m_vals, first, last = _grid_runs(m_ts, m_vals, step)
        if not len(first):
            return _NO_OCCURRENCES
        if self.clear_threshold is not None:
            first, last = _start_at_first_violation(self._violates(m_vals), first, last)
            if not len(first):
                return _NO_OCCURRENCES
        if self._min_duration_ns:
            # Samples within a run are one step apart, so a run lasts its number of samples
            # times the step; only the last run can be cut short by the period end.
            needed = -(-self._min_duration_ns // period_ns)
            long_enough = last - first >= needed - 1
            last_start = int(m_ts[first[-1]]) * unit_ns
            last_end = min(int(m_ts[last[-1]]) * unit_ns + period_ns, end_ns)
            long_enough[-1] = last_end - last_start >= self._min_duration_ns
            if np.count_nonzero(long_enough) < len(first):
                first, last = first[long_enough], last[long_enough]
                if not len(first):
                    return _NO_OCCURRENCES

        occ_start_ns = m_ts[first] * unit_ns
        occ_end_ns = m_ts[last] * unit_ns + period_ns
        # Only the last occurrence can reach past the period end.
        if occ_end_ns[-1] > end_ns:
            occ_end_ns[-1] = end_ns
        return OccurrenceArrays(
            occ_start_ns.view("M8[ns]"),
            occ_end_ns.view("M8[ns]"),
            self._peaks(m_vals, first, last),
        )

    def _violates(self, vals: np.ndarray) -> np.ndarray:
        if self.operator == "!=":
            # NaN != threshold is true in IEEE arithmetic; NaN is no data and must not violate.
            return (vals < self.threshold) | (vals > self.threshold)
        return _COMPARISONS[self.operator](vals, self.threshold)

    def _peaks(self, vals: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        if self.operator == "==":
            return np.full(len(first), self.threshold)
        if self.operator in (">", ">="):
            return _segment_reduce(np.maximum, vals, first, last)
        if self.operator in ("<", "<="):
            return _segment_reduce(np.minimum, vals, first, last)
        highest = _segment_reduce(np.maximum, vals, first, last)
        lowest = _segment_reduce(np.minimum, vals, first, last)
        above = highest - self.threshold >= self.threshold - lowest
        return np.where(above, highest, lowest)


def _finite_float(value: object, name: str) -> float:
    # Accepts int, float, numpy scalars and Decimal (what a Numeric column returns), not text.
    if isinstance(value, bool | str | bytes):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        result = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    return result


def _grid_runs(
    stamps: np.ndarray, vals: np.ndarray, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs of qualifying samples that follow each other on the grid without a gap.

    Two consecutive qualifying samples belong to the same run when they are exactly one step
    apart: any grid slot between them would be missing, NaN or not qualifying. Samples off the
    grid are dropped first, since they stand for no slot and must not separate their neighbours.

    Args:
        stamps: Timestamps of the qualifying samples, in index units.
        vals: Their values.
        step: The sampling period in index units.

    Returns:
        The timestamps and values kept, and the first and last position (inclusive) of each run
        in them.

    Raises:
        ValueError: The timestamps are not strictly increasing.
    """
    steps = stamps[1:] - stamps[:-1]
    breaks = (steps != step).nonzero()[0]
    jumps = steps[breaks]
    if np.count_nonzero(jumps <= 0):
        raise ValueError("values must be indexed by strictly increasing timestamps")
    first = np.empty(len(breaks) + 1, dtype=np.intp)
    first[0] = 0
    first[1:] = breaks + 1
    last = np.empty(len(breaks) + 1, dtype=np.intp)
    last[:-1] = breaks
    last[-1] = len(stamps) - 1
    # Every sample is on the grid when the first one is and every jump between runs is a whole
    # number of steps. (Floor division is several times faster than numpy's modulo.)
    if stamps[0] // step * step == stamps[0] and not np.count_nonzero(jumps // step * step - jumps):
        return stamps, vals, first, last
    # Within a run every timestamp is one step from the next: one on the grid means all are.
    run_start = stamps[first]
    on_grid = np.repeat(run_start // step * step == run_start, last - first + 1)
    stamps, vals = stamps[on_grid], vals[on_grid]
    if not len(stamps):
        return stamps, vals, _EMPTY_INT, _EMPTY_INT
    return _grid_runs(stamps, vals, step)


def _start_at_first_violation(
    violates: np.ndarray, first: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Moves each run's start to its first violating sample; drops runs without one."""
    candidates = violates.nonzero()[0]
    if not len(candidates):
        return _EMPTY_INT, _EMPTY_INT
    at = np.minimum(candidates.searchsorted(first, side="left"), len(candidates) - 1)
    start = candidates[at]
    active = (start >= first) & (start <= last)
    return start[active], last[active]


def _segment_reduce(
    ufunc: np.ufunc, vals: np.ndarray, first: np.ndarray, last: np.ndarray
) -> np.ndarray:
    """``ufunc`` reduced over ``vals[first[k] : last[k] + 1]`` for each k (sorted, disjoint)."""
    bounds = np.empty(2 * len(first), dtype=np.intp)
    bounds[0::2] = first
    bounds[1::2] = last + 1
    # Only the last segment can end at the array's end, where reduceat stops by itself.
    if bounds[-1] == len(vals):
        bounds = bounds[:-1]
    return ufunc.reduceat(vals, bounds)[0::2]
