"""The alarm rule of the design walked sample by sample in integer nanoseconds: the reference
that the vectorised calculation is tested against (property tests) and timed against
(`benchmarks/alarm_calc.py`). Plain Python, one sample at a time, written from the rule and not
from the code it checks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from jobs_pipeline.calc import AlarmCalcThreshold

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COMPARE = {
    ">": lambda v, x: v > x,
    ">=": lambda v, x: v >= x,
    "<": lambda v, x: v < x,
    "<=": lambda v, x: v <= x,
    "==": lambda v, x: v == x,
    "!=": lambda v, x: v != x,
}

Span = tuple[int, int, float]  # start and end in nanoseconds since the epoch, peak
Episode = tuple[int, int, float, bool]  # start, end (ns since the epoch), peak, open


def reference(
    alarm: AlarmCalcThreshold, stamps: list[int], values: list[float], start: int, end: int
) -> list[Span]:
    """Walks the samples one by one, in integer nanoseconds, with the rule as the design states
    it: a sample covers up to the next one when that one follows within 1.5 sampling periods,
    else one sampling period; an occurrence ends at the first sample that no longer qualifies,
    at the end of the last qualifying sample's coverage when a gap follows, or at the period
    end."""
    inside = [(t, v) for t, v in zip(stamps, values, strict=True) if start <= t < end]
    found, _ = walk(alarm, inside)
    clipped = [(s, min(e, end), p) for s, e, p in found]
    return [(s, e, p) for s, e, p in clipped if e - s >= min_duration_ns(alarm)]


def walk(alarm: AlarmCalcThreshold, samples: list[tuple[int, float]]) -> tuple[list[Span], bool]:
    """The occurrences of ``samples`` (nanosecond stamps, values) without clipping or minimum
    duration, and whether the last one is still active at the last sample."""
    period = alarm.sampling_period // timedelta(microseconds=1) * 1_000
    threshold, compare = alarm.threshold, COMPARE[alarm.operator]
    clear = threshold if alarm.clear_threshold is None else alarm.clear_threshold
    found: list[Span] = []
    active_since: int | None = None
    peak = math.nan
    previous: int | None = None
    for t, value in samples:
        known = not math.isnan(value)
        if active_since is not None and previous is not None:
            if 2 * (t - previous) > 3 * period:  # a gap: no data after previous + period
                found.append((active_since, previous + period, peak))
                active_since = None
            elif known and compare(value, clear):
                peak = extreme(alarm, peak, value)
            else:
                found.append((active_since, t, peak))
                active_since = None
        if active_since is None and known and compare(value, threshold):
            active_since, peak = t, (threshold if alarm.operator == "==" else value)
        previous = t
    still_active = active_since is not None and previous is not None
    if active_since is not None and previous is not None:
        found.append((active_since, previous + period, peak))
    return found, still_active


def min_duration_ns(alarm: AlarmCalcThreshold) -> int:
    return alarm.min_duration // timedelta(microseconds=1) * 1_000


def extreme(alarm: AlarmCalcThreshold, peak: float, value: float) -> float:
    """The more extreme of the peak so far and a new value that keeps the occurrence going."""
    if alarm.operator == "==":
        return alarm.threshold
    if alarm.operator in (">", ">="):
        return max(peak, value)
    if alarm.operator in ("<", "<="):
        return min(peak, value)
    distance, best = abs(value - alarm.threshold), abs(peak - alarm.threshold)
    if distance > best or (distance == best and value > peak):
        return value
    return peak


def as_datetime(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1_000)


def as_ns(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1) * 1_000


def whole_series_episodes(
    alarm: AlarmCalcThreshold, stamps: list[int], values: list[float]
) -> list[Episode]:
    """Every episode of the series, the last one open when still active at the last sample;
    open episodes are kept whatever their duration, since they may yet grow."""
    found, still_active = walk(alarm, list(zip(stamps, values, strict=True)))
    episodes = []
    for position, (start, end, peak) in enumerate(found):
        is_open = still_active and position == len(found) - 1
        if is_open or end - start >= min_duration_ns(alarm):
            episodes.append((start, end, peak, is_open))
    return episodes
