"""How well the samples of one feature cover a period: counts, gaps and coverage.

Coverage follows the same rule as the alarm calculation (`jobs_pipeline.calc.sampling`): a
sample covers up to the next sample when that one is contiguous (at most 1.5 sampling periods
later), otherwise one sampling period; what no sample covers is a gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from jobs_pipeline.calc.datetime_range import DateTimeRange, timedelta_ns
from jobs_pipeline.calc.sampling import contiguity_limit, samples_in_period


@dataclass(frozen=True, kw_only=True)
class DataQuality:
    """Data quality of one feature of one object over a period.

    Attributes:
        samples: Samples with ``period.start <= t < period.end``, NaN ones included.
        nan_samples: How many of them are NaN (no data).
        gaps: Stretches of the period that no sample covers: between two samples that are not
            contiguous, before the first sample and after the last sample's coverage (the
            samples outside the period are not read). A period without samples is one gap.
        gap_duration: Total length of the gaps.
        coverage_percent: Share of the period, 0 to 100, covered by samples that have a value
            (gaps and the coverage of NaN samples are not covered).
    """

    samples: int
    nan_samples: int
    gaps: int
    gap_duration: timedelta
    coverage_percent: float

    def low_coverage_note(self, min_coverage_percent: float) -> str | None:
        """A sentence for a step's comment when the coverage is below ``min_coverage_percent``
        (exclusive), else None; e.g. ``coverage 31.2 % (gaps 16 h 30 min)``.

        The percentage is rounded down, so that a coverage just below the threshold never reads
        as the threshold itself.
        """
        if self.coverage_percent >= min_coverage_percent:
            return None
        shown = math.floor(self.coverage_percent * 10) / 10
        reasons = [f"gaps {format_duration(self.gap_duration)}"] if self.gaps else []
        if self.nan_samples:
            plural = "s" if self.nan_samples > 1 else ""
            reasons.append(f"{self.nan_samples} NaN sample{plural}")
        return f"coverage {shown:.1f} % ({', '.join(reasons)})"


def assess_data_quality(
    values: pd.Series, period: DateTimeRange, sampling_period: timedelta
) -> DataQuality:
    """Counts the samples of ``values`` in ``period`` and measures how well they cover it.

    Args:
        values: The feature's values (NaN means no data) on a timezone-aware `DatetimeIndex`
            sorted ascending without duplicates; samples outside ``period`` are not read. An
            empty Series may have any index.
        period: The half-open range ``[start, end)`` to assess.
        sampling_period: The feature's nominal time between two samples; positive.

    Returns:
        The counts, the gaps and the coverage (see `DataQuality`).

    Raises:
        TypeError: ``values`` is not a Series or its index is not a `DatetimeIndex`.
        ValueError: The index is naive, or ``sampling_period`` is not positive.
    """
    period_ns = timedelta_ns(sampling_period)
    if period_ns <= 0:
        raise ValueError(f"sampling_period must be positive, got {sampling_period!r}")
    samples = samples_in_period(values, period)
    length_ns = timedelta_ns(period.duration)
    if samples is None:
        return DataQuality(
            samples=0,
            nan_samples=0,
            gaps=1,
            gap_duration=period.duration,
            coverage_percent=0.0,
        )
    stamps, vals, unit_ns, start_ns, end_ns = samples
    ns = stamps * unit_ns
    steps = ns[1:] - ns[:-1]
    contiguous = steps <= contiguity_limit(period_ns, 1)
    # Each sample covers [t, end): up to the next sample when it is contiguous, else one
    # sampling period; the last one, whose successor is not read, one period cut at the end.
    covered_until = ns + period_ns
    covered_until[:-1][contiguous] = ns[1:][contiguous]
    np.minimum(covered_until, end_ns, out=covered_until)
    nan = np.isnan(vals)
    covered_ns = int((covered_until - ns)[~nan].sum())
    holes = steps[~contiguous] - period_ns
    lead_ns = int(ns[0]) - start_ns
    tail_ns = end_ns - int(covered_until[-1])
    gap_ns = int(holes.sum()) + lead_ns + tail_ns
    return DataQuality(
        samples=len(ns),
        nan_samples=int(np.count_nonzero(nan)),
        gaps=len(holes) + (lead_ns > 0) + (tail_ns > 0),
        gap_duration=timedelta(microseconds=gap_ns / 1_000),
        coverage_percent=100.0 * covered_ns / length_ns,
    )


def format_duration(value: timedelta) -> str:
    """A duration for people: ``16 h 30 min``, ``2 d 5 min``, ``45 s``, ``0.5 s``.

    Whole days, hours, minutes and seconds, the zero ones left out; a duration under a minute
    shows its fractional seconds (to the millisecond), a longer one is rounded to the second.
    """
    # Rounded first: a sum of database intervals off by microseconds (59.99999 s) reads as
    # what it is (1 min), not as 60 s.
    seconds = round(value.total_seconds(), 3)
    if seconds < 60:
        return f"{round(seconds, 3):g} s"
    rest = round(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts)
