"""Threshold alarms over sampled feature values, with hysteresis and minimum duration.

The calculation works on the int64 timestamps and float64 values of the Series without copying
them: one comparison over the whole period finds the samples that qualify, and all further work
is done on those (their number) and on the runs they form (the number of occurrences). How long
a sample stands for follows `jobs_pipeline.calc.sampling`, whatever its timestamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Final, NamedTuple

import numpy as np
import pandas as pd

from jobs_pipeline.calc.datetime_range import DateTimeRange, timedelta_ns
from jobs_pipeline.calc.occurrence_frame import COLUMNS, occurrence_frame
from jobs_pipeline.calc.qualifying_runs import (
    contiguous_runs,
    coverage_ends,
    first_violations,
    positions_of,
    read_only,
)
from jobs_pipeline.calc.sampling import contiguity_limit, samples_in_period

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

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

FRAME_COLUMNS: Final = COLUMNS
"""Columns of `AlarmCalcThreshold.find_occurrences_frame`, in order."""


class AlarmOccurrenceSpan(NamedTuple):
    """One occurrence of an alarm: the alarm was active during ``[start, end)``.

    A named tuple rather than a dataclass: a list of them is built without running Python code
    per occurrence, which would cost more than finding the occurrences.

    Attributes:
        start: Timestamp of the first violating sample (UTC).
        end: End of the occurrence, exclusive (UTC): the start of the first sample that no longer
            qualifies, the end of the last qualifying sample's coverage when a gap follows, or
            the end of the calculated period.
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


class Episodes(NamedTuple):
    """The episodes of an alarm that overlap a period, found in samples read around it (see
    `AlarmCalcThreshold.find_episodes`); parallel arrays, one element per episode, in
    chronological order.

    Attributes:
        start: ``datetime64[ns]``, UTC.
        end: ``datetime64[ns]``, UTC, exclusive; never clipped to the period.
        peak_value: ``float64``, in the feature's unit.
        open: ``bool``: the episode is still active at the last sample read and may go on (that
            sample is the last one there is, or the read stopped before the episode ended).
        earlier_needed: The first episode may have begun before the first sample read: samples
            before the read would change its start, peak and whether it lasts long enough.
        later_needed: The last episode may go on after the last sample read: samples after the
            read would change its end, peak and whether it lasts long enough.
    """

    start: np.ndarray
    end: np.ndarray
    peak_value: np.ndarray
    open: np.ndarray
    earlier_needed: bool
    later_needed: bool


# Shared by every empty result, hence read-only.
_NO_OCCURRENCES: Final = OccurrenceArrays(
    read_only(np.empty(0, dtype="M8[ns]")),
    read_only(np.empty(0, dtype="M8[ns]")),
    read_only(np.empty(0, dtype=np.float64)),
)
_NO_EPISODES: Final = Episodes(
    *_NO_OCCURRENCES, read_only(np.empty(0, dtype=bool)), earlier_needed=False, later_needed=False
)


@dataclass(frozen=True, kw_only=True)
class AlarmCalcThreshold:
    """A threshold alarm on one feature, evaluated over a period of sampled values.

    Rules (all comparisons are ``value <op> limit``, the limit in the feature's unit):

    * Samples may stand anywhere in time: on a grid, off the hour, jittered or irregular; none
      is ignored for where it falls. Consecutive samples are contiguous when the later one is at
      most 1.5 sampling periods after the earlier one (exactly 1.5 included). A sample at ``t``
      covers ``[t, next t)`` when the next sample is contiguous, otherwise
      ``[t, t + sampling_period)``, and there is no data from there to the next sample (a gap).
      On a regular grid every sample covers ``[t, t + sampling_period)``.
    * A sample *violates* when ``value <operator> threshold`` holds.
    * "No data" never violates and never keeps an alarm active: a NaN value or a gap.
    * An occurrence starts at a violating sample. Without ``clear_threshold`` it stays active
      while the following contiguous samples violate. With ``clear_threshold`` (hysteresis) it
      stays active while they satisfy ``value <operator> clear_threshold``, with the same
      operator: for ``>`` the alarm starts above ``threshold`` and clears at or below
      ``clear_threshold``, for ``>=`` it clears below ``clear_threshold``, and mirrored for ``<``
      and ``<=``. A sample that only satisfies the clear condition keeps an active occurrence
      going but never starts one.
    * An occurrence ends at the start of the first sample that no longer qualifies, at the end
      of the last qualifying sample's coverage when a gap follows, or at the end of the period,
      whichever comes first.
    * Occurrences shorter than ``min_duration`` are dropped; one exactly as long is kept. The
      duration is measured after clipping to the period end.
    * Only samples with ``period.start <= t < period.end`` are read; the last of them has no
      next sample, so it covers one sampling period (clipped to the period end).
      `find_episodes` instead finds whole episodes from samples read around the period (what
      a job stores, so that its results do not depend on where periods are cut).

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
        sampling_period: Nominal time between two consecutive samples of the feature;
            positive.

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
        object.__setattr__(self, "_period_ns", timedelta_ns(self.sampling_period))
        object.__setattr__(self, "_min_duration_ns", timedelta_ns(self.min_duration))

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
        found = self._find(values, period)
        if found is None:
            return []
        bounds, peaks = found
        # Python datetimes from whole microseconds since the epoch, each made by a C call:
        # the aware epoch plus a timedelta that numpy builds.
        starts, ends = (map(_EPOCH.__add__, row) for row in _microseconds(bounds).tolist())
        fields = zip(starts, ends, peaks.tolist(), strict=True)
        # tuple.__new__ runs in C; NamedTuple._make would add a Python call per occurrence.
        return list(map(tuple.__new__, repeat(AlarmOccurrenceSpan, len(peaks)), fields))

    def find_occurrences_frame(self, values: pd.Series, period: DateTimeRange) -> pd.DataFrame:
        """Same as `find_occurrences`, as a DataFrame.

        Returns:
            One row per occurrence in chronological order, a default `RangeIndex` and the columns
            ``start`` and ``end`` (``datetime64[ns, UTC]``, ``end`` exclusive) and
            ``peak_value`` (``float64``).
        """
        found = self._find(values, period)
        if found is None:
            return occurrence_frame(np.empty((2, 0), dtype="M8[ns]"), np.empty(0))
        bounds, peaks = found
        return occurrence_frame(bounds.view("M8[ns]"), peaks)

    def find_occurrences_arrays(self, values: pd.Series, period: DateTimeRange) -> OccurrenceArrays:
        """Same as `find_occurrences`, as numpy arrays, without building result objects.

        The two other forms wrap this one; bulk consumers can skip their result objects.

        Returns:
            The occurrences in chronological order, without overlap; start and end with
            nanosecond resolution.
        """
        found = self._find(values, period)
        if found is None:
            return _NO_OCCURRENCES
        bounds, peaks = found
        start, end = bounds.view("M8[ns]")
        return OccurrenceArrays(start, end, peaks)

    def find_episodes(
        self,
        values: pd.Series,
        period: DateTimeRange,
        read: DateTimeRange,
        *,
        more_before: bool,
        more_after: bool,
    ) -> Episodes:
        """The whole episodes that overlap ``period``, from the samples read around it.

        Unlike `find_occurrences`, nothing is clipped to ``period``: an episode that began
        before it or goes on after it is found whole, as far as the samples read reach, and its
        duration counts from its first violating sample to its end. The samples of ``read``
        (which should contain ``period``) are the only ones looked at; the flags say whether
        there are samples around it that were not read. The result equals that of any wider
        read whenever ``earlier_needed`` and ``later_needed`` are both False.

        * An episode whose first sample read may continue unread samples before it
          (``more_before``, the sample within 1.5 sampling periods of ``read.start``) is taken
          to begin at that sample, and ``earlier_needed`` says so. It says so too when the read
          starts less than 1.5 sampling periods before ``period`` (with ``more_before``): an
          unread episode could reach into the period.
        * An episode still active at the last sample read is ``open`` when no sample follows
          (not ``more_after``) or when one may follow within 1.5 sampling periods of it (then
          ``later_needed`` says so too); it ends with that sample's coverage of one sampling
          period. Otherwise the next sample is unread but beyond the contiguity limit (a gap).
        * Open episodes, and one that may have begun before the read, are kept whatever their
          duration, since they may yet grow to the minimum duration; other episodes shorter
          than ``min_duration`` are dropped.

        Args:
            values: As for `find_occurrences`; samples outside ``read`` are ignored.
            period: The episodes to report are those that overlap it.
            read: The range whose samples count.
            more_before: Samples may exist before ``read.start``.
            more_after: Samples may exist at or after ``read.end``.

        Returns:
            The episodes that overlap ``period`` (see `Episodes`).

        Raises:
            As `find_occurrences`.
        """
        # An unread sample covers at most 1.5 sampling periods (up to a contiguous successor):
        # one just before the read may end an episode inside the period.
        period_start_ns, period_end_ns = period.bounds_ns
        unread_reach = (
            more_before and read.bounds_ns[0] + 3 * self._period_ns // 2 > period_start_ns
        )
        nothing = _NO_EPISODES._replace(earlier_needed=True) if unread_reach else _NO_EPISODES
        samples = samples_in_period(values, read)
        if samples is None:
            return nothing
        ts, vals, unit_ns, read_start_ns, read_end_ns = samples
        if self._period_ns % unit_ns:
            ts, unit_ns = ts * unit_ns, 1
        members, m_vals = self._members(vals)
        if not len(members):
            return nothing
        m_ts = ts.take(members)
        limit = contiguity_limit(self._period_ns, unit_ns)
        first, last = contiguous_runs(members, m_ts, limit)
        peaks = self._peaks(m_vals, first)
        read_ns = (read_start_ns, read_end_ns)
        begins_earlier, ends_later, open_last = _read_edges(
            ts, members, read_ns, unit_ns, limit, more_before, more_after
        )
        starts, has_start = self._episode_starts(m_vals, first, last, begins_earlier)
        bounds = self._bounds(ts, members, m_ts, starts, last, limit, unit_ns)
        earlier_needed = unread_reach or (begins_earlier and int(bounds[1, 0]) > period_start_ns)
        later_needed = ends_later and int(bounds[0, -1]) < period_end_ns
        if has_start is not None:
            later_needed = later_needed and bool(has_start[-1])
        bounds, peaks, opened = self._episodes_kept(
            bounds, peaks, has_start, open_last, begins_earlier, period, read_ns
        )
        start, end = bounds.view("M8[ns]")
        return Episodes(start, end, peaks, opened, earlier_needed, later_needed)

    def _episode_starts(
        self, m_vals: np.ndarray, first: np.ndarray, last: np.ndarray, begins_earlier: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Where each run's episode starts (an index into the members) and, with a clear
        threshold, which runs have a violating sample at all (None: every run)."""
        if self.clear_threshold is None:
            return first, None
        candidates = self._violates(m_vals).nonzero()[0]
        if len(candidates):
            starts = candidates.take(candidates.searchsorted(first), mode="clip")
            has_start = (starts >= first) & (starts <= last)
        else:
            starts, has_start = first.copy(), np.zeros(len(first), dtype=bool)
        if begins_earlier:
            # Violating samples may precede the read: the run counts from its first sample.
            starts[0], has_start[0] = first[0], True
        return starts, has_start

    def _episodes_kept(
        self,
        bounds: np.ndarray,
        peaks: np.ndarray,
        has_start: np.ndarray | None,
        open_last: bool,
        begins_earlier: bool,
        period: DateTimeRange,
        read_ns: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bounds, peaks and open flags of the episodes `find_episodes` reports."""
        opened = np.zeros(len(peaks), dtype=bool)
        opened[-1] = open_last
        period_start_ns, period_end_ns = period.bounds_ns
        # Every episode overlaps the period when the read stays inside it (each one starts at a
        # sample read and ends after it): the comparisons are needed only for a wider read.
        keep = has_start  # None: every run so far
        if read_ns[0] < period_start_ns:
            keep = _and(keep, bounds[1] > period_start_ns)
        if read_ns[1] > period_end_ns:
            keep = _and(keep, bounds[0] < period_end_ns)
        if self._min_duration_ns:
            long_enough = bounds[1] - bounds[0] >= self._min_duration_ns
            long_enough |= opened
            long_enough[0] |= begins_earlier
            keep = _and(keep, long_enough)
        if keep is not None and np.count_nonzero(keep) < len(keep):
            return bounds[:, keep], peaks[keep], opened[keep]
        return bounds, peaks, opened

    def more_extreme(self, first: float, second: float) -> float:
        """The peak of two parts of one episode with these peaks (see the class docstring)."""
        if self.operator in (">", ">="):
            return max(first, second)
        if self.operator in ("<", "<="):
            return min(first, second)
        if self.operator == "==":
            return self.threshold
        far, near = abs(first - self.threshold), abs(second - self.threshold)
        return first if far > near or (far == near and first > second) else second

    def _find(
        self, values: pd.Series, period: DateTimeRange
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The occurrences as fresh arrays: their starts and ends as the two rows of one
        ``int64`` array (nanoseconds since the epoch) and their peaks, or None when there are
        none. One array for both ends saves a numpy call per conversion and filter, and the
        frame form takes it as one block."""
        # Every step below is a whole-array numpy operation; the constant cost per call (a few
        # dozen numpy calls) is kept low on purpose, because a year of one feature takes only
        # tens of microseconds to scan.
        samples = samples_in_period(values, period)
        if samples is None:
            return None
        ts, vals, unit_ns, _, end_ns = samples
        if self._period_ns % unit_ns:
            # A sampling period of no whole number of index units (rare): work in nanoseconds.
            ts, unit_ns = ts * unit_ns, 1

        # From here on only the qualifying samples ("members") are looked at: their positions,
        # timestamps and values. An alarm qualifies for a small share of the time, so the work
        # shrinks from the whole period to the occurrences.
        members, m_vals = self._members(vals)
        if not len(members):
            return None
        m_ts = ts.take(members)

        limit = contiguity_limit(self._period_ns, unit_ns)
        first, last = contiguous_runs(members, m_ts, limit)
        # Over whole runs: with hysteresis, the samples before a run's first violation do not
        # violate, so they are never more extreme than it.
        peaks = self._peaks(m_vals, first)
        if self.clear_threshold is not None:
            first, violated = first_violations(self._violates(m_vals), first, last)
            if violated is not None:
                if not len(first):
                    return None
                last, peaks = last[violated], peaks[violated]

        bounds = self._bounds(ts, members, m_ts, first, last, limit, unit_ns)
        # Only the last occurrence can reach past the period end: any other one ends at or
        # before a later sample in the period.
        if bounds[1, -1] > end_ns:
            bounds[1, -1] = end_ns
        if self._min_duration_ns:
            long_enough = bounds[1] - bounds[0] >= self._min_duration_ns
            if np.count_nonzero(long_enough) < len(long_enough):
                bounds, peaks = bounds[:, long_enough], peaks[long_enough]
                if not len(peaks):
                    return None
        return bounds, peaks

    def _bounds(
        self,
        ts: np.ndarray,
        members: np.ndarray,
        m_ts: np.ndarray,
        starts: np.ndarray,
        last: np.ndarray,
        limit: int,
        unit_ns: int,
    ) -> np.ndarray:
        """Starts (the members ``starts``) and coverage ends (of the members ``last``) as the
        two rows of one int64 array, in nanoseconds since the epoch."""
        bounds = np.empty((2, len(starts)), dtype=np.int64)
        m_ts.take(starts, out=bounds[0])
        coverage_ends(
            ts, members.take(last), m_ts.take(last), limit, self._period_ns // unit_ns, bounds[1]
        )
        if unit_ns != 1:
            bounds *= unit_ns
        return bounds

    def _members(self, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions and values of the samples that keep an occurrence going (or start one,
        without a clear threshold); NaN never qualifies."""
        if self.operator == "!=":  # never with a clear threshold
            members = positions_of(vals != self.threshold)
            m_vals = vals.take(members)
            # NaN != threshold holds in IEEE arithmetic, but NaN is no data.
            known = m_vals == m_vals
            if np.count_nonzero(known) < len(known):
                members, m_vals = members[known], m_vals[known]
            return members, m_vals
        keeps = self.threshold if self.clear_threshold is None else self.clear_threshold
        members = positions_of(_COMPARISONS[self.operator](vals, keeps))
        return members, vals.take(members)

    def _violates(self, vals: np.ndarray) -> np.ndarray:
        if self.operator == "!=":
            # NaN != threshold is true in IEEE arithmetic; NaN is no data and must not violate.
            return (vals < self.threshold) | (vals > self.threshold)
        return _COMPARISONS[self.operator](vals, self.threshold)

    def _peaks(self, vals: np.ndarray, first: np.ndarray) -> np.ndarray:
        """The peak of each run ``vals[first[k] : first[k + 1]]`` (the last one to the end)."""
        if self.operator == "==":
            return np.full(len(first), self.threshold)
        if self.operator in (">", ">="):
            return np.maximum.reduceat(vals, first)
        if self.operator in ("<", "<="):
            return np.minimum.reduceat(vals, first)
        highest = np.maximum.reduceat(vals, first)
        lowest = np.minimum.reduceat(vals, first)
        return np.where(highest - self.threshold >= self.threshold - lowest, highest, lowest)


def _read_edges(
    ts: np.ndarray,
    members: np.ndarray,
    read_ns: tuple[int, int],
    unit_ns: int,
    limit: int,
    more_before: bool,
    more_after: bool,
) -> tuple[bool, bool, bool]:
    """Whether the first run may have begun before the read, whether the last may go on after
    it, and whether the last is still active at the last sample read (open).

    A run at either end of the read may go on beyond it when an unread sample could be
    contiguous with its outermost sample (stamps are whole units: a sample before the read is at
    most the first whole unit before it, one after it at least the first)."""
    count = len(ts)
    begins_earlier = (
        more_before and int(members[0]) == 0 and int(ts[0]) - -(-read_ns[0] // unit_ns) < limit
    )
    ends_later = (
        more_after
        and int(members[-1]) == count - 1
        and -(-read_ns[1] // unit_ns) - int(ts[-1]) <= limit
    )
    open_last = int(members[-1]) == count - 1 and (ends_later or not more_after)
    return begins_earlier, ends_later, open_last


def _and(mask: np.ndarray | None, other: np.ndarray) -> np.ndarray:
    """``mask & other``, in place; ``other`` when there is no mask yet."""
    if mask is None:
        return other
    mask &= other
    return mask


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


def _microseconds(stamps_ns: np.ndarray) -> np.ndarray:
    """Nanoseconds since the epoch as ``timedelta64[us]``, rounded down."""
    return (stamps_ns // 1_000).view("m8[us]")
