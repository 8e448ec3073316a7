"""The vectorised alarm calculation equals a sample-by-sample reference over random series whose
timestamps are off the hour, jittered, denser than the sampling period and full of holes of every
size around the contiguity limit of 1.5 sampling periods."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs_pipeline.calc import OPERATORS, AlarmCalcThreshold, DateTimeRange

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_NS = 1_709_251_200 * 10**9  # 2024-03-01T00:00:00Z
NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
LEVELS = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0]
COMPARE = {
    ">": lambda v, x: v > x,
    ">=": lambda v, x: v >= x,
    "<": lambda v, x: v < x,
    "<=": lambda v, x: v <= x,
    "==": lambda v, x: v == x,
    "!=": lambda v, x: v != x,
}

Span = tuple[int, int, float]  # start and end in nanoseconds since the epoch, peak


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
    clear = alarm.threshold if alarm.clear_threshold is None else alarm.clear_threshold
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
            elif known and COMPARE[alarm.operator](value, clear):
                peak = extreme(alarm, peak, value)
            else:
                found.append((active_since, t, peak))
                active_since = None
        if active_since is None and known and COMPARE[alarm.operator](value, alarm.threshold):
            active_since, peak = t, (alarm.threshold if alarm.operator == "==" else value)
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


@st.composite
def alarms(draw: st.DrawFn) -> AlarmCalcThreshold:
    operator = draw(st.sampled_from(OPERATORS))
    threshold = draw(st.sampled_from(LEVELS))
    clear = None
    if operator in (">", ">=") and draw(st.booleans()):
        clear = draw(st.sampled_from([x for x in LEVELS if x <= threshold]))
    elif operator in ("<", "<=") and draw(st.booleans()):
        clear = draw(st.sampled_from([x for x in LEVELS if x >= threshold]))
    # 61 s: 1.5 periods (91.5 s) falls between two whole-second stamps.
    period = draw(st.sampled_from([600, 900, 420, 61]))
    return AlarmCalcThreshold(
        operator=operator,
        threshold=threshold,
        clear_threshold=clear,
        min_duration=timedelta(seconds=draw(st.one_of(st.just(0), st.integers(0, 3 * period)))),
        sampling_period=timedelta(seconds=period),
    )


def steps(period: int, grain: int) -> st.SearchStrategy[int]:
    """Distances to the next sample in nanoseconds, whole multiples of ``grain``, all positive:
    denser than the sampling period, on it, jittered, right around 1.5 periods, and holes."""
    limit = 3 * period // 2 // grain * grain  # 1.5 periods when the grain allows it

    def grains(low: int, high: int) -> st.SearchStrategy[int]:
        return st.integers(max(low // grain, 1), max(high // grain, 1)).map(lambda n: n * grain)

    edge = st.sampled_from([limit - grain, limit, limit, limit + grain]).filter(lambda s: s > 0)
    return st.one_of(
        st.just(period),
        grains(period - period // 10, period + period // 10),
        grains(1, period),
        edge,
        edge,
        grains(limit + grain, 12 * period),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[AlarmCalcThreshold, pd.Series, DateTimeRange]:
    alarm = draw(alarms())
    period = alarm.sampling_period // timedelta(seconds=1) * 10**9
    unit = draw(st.sampled_from(list(NS_PER_UNIT)))
    grain = NS_PER_UNIT[unit]
    # Anywhere relative to the epoch grid of the sampling period.
    t = BASE_NS + draw(st.integers(0, period // grain)) * grain
    stamps, values = [], []
    for _ in range(draw(st.integers(0, 40))):
        stamps.append(t)
        values.append(draw(st.sampled_from([*LEVELS, math.nan])))
        t += draw(steps(period, grain))
    span = max(t - BASE_NS, period)
    # Periods mostly cover the samples, sometimes cut them, sometimes miss them; their bounds
    # are whole microseconds (datetimes) and fall anywhere between samples.
    start = (BASE_NS + draw(st.integers(-10, 44)) * span // 40) // 1_000 * 1_000
    end = start + (draw(st.integers(1, 60)) * span // 40) // 1_000 * 1_000 + 1_000
    index = pd.DatetimeIndex(np.array(stamps, dtype=np.int64).view("M8[ns]"), tz=UTC).as_unit(unit)
    series = pd.Series(values, index=index, dtype="float64")
    return alarm, series, DateTimeRange(as_datetime(start), as_datetime(end))


def as_datetime(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1_000)


def as_ns(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1) * 1_000


@settings(max_examples=400, deadline=None)
@given(cases())
def test_matches_sample_by_sample_reference(
    case: tuple[AlarmCalcThreshold, pd.Series, DateTimeRange],
) -> None:
    alarm, values, period = case
    stamps = values.index.as_unit("ns").asi8.tolist()
    expected = reference(alarm, stamps, values.tolist(), as_ns(period.start), as_ns(period.end))

    found = alarm.find_occurrences(values, period)
    frame = alarm.find_occurrences_frame(values, period)
    arrays = alarm.find_occurrences_arrays(values, period)

    assert [(o.start, o.end, o.peak_value) for o in found] == [
        (as_datetime(s), as_datetime(e), p) for s, e, p in expected
    ]
    expected_frame = pd.DataFrame(
        {
            "start": pd.DatetimeIndex(
                np.array([s for s, _, _ in expected], dtype=np.int64).view("M8[ns]"), tz=UTC
            ),
            "end": pd.DatetimeIndex(
                np.array([e for _, e, _ in expected], dtype=np.int64).view("M8[ns]"), tz=UTC
            ),
            "peak_value": np.array([p for _, _, p in expected], dtype=np.float64),
        }
    )
    pd.testing.assert_frame_equal(frame, expected_frame)
    assert (
        list(
            zip(
                arrays.start.view(np.int64).tolist(),
                arrays.end.view(np.int64).tolist(),
                arrays.peak_value.tolist(),
                strict=True,
            )
        )
        == expected
    )
