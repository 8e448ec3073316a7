"""The vectorised alarm calculation equals a sample-by-sample reference over random series."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs_pipeline.calc import OPERATORS, AlarmCalcThreshold, DateTimeRange

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE = datetime(2024, 3, 1, tzinfo=UTC)
LEVELS = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0]
COMPARE = {
    ">": lambda v, x: v > x,
    ">=": lambda v, x: v >= x,
    "<": lambda v, x: v < x,
    "<=": lambda v, x: v <= x,
    "==": lambda v, x: v == x,
    "!=": lambda v, x: v != x,
}


def reference(
    alarm: AlarmCalcThreshold, values: pd.Series, period: DateTimeRange
) -> list[tuple[datetime, datetime, float]]:
    """Walks the grid slot by slot through the period, keeping the alarm's state."""
    step = alarm.sampling_period
    clear = alarm.threshold if alarm.clear_threshold is None else alarm.clear_threshold
    by_time = {stamp.to_pydatetime(): value for stamp, value in values.items()}
    found: list[tuple[datetime, datetime, float]] = []
    start: datetime | None = None
    peak = math.nan
    slot = EPOCH + -(-(period.start - EPOCH) // step) * step  # first grid point >= start
    while slot < period.end:
        value = by_time.get(slot, math.nan)
        known = not math.isnan(value)
        if start is not None:
            if known and COMPARE[alarm.operator](value, clear):
                peak = extreme(alarm, peak, value)
            else:
                found.append((start, slot, peak))
                start = None
        if start is None and known and COMPARE[alarm.operator](value, alarm.threshold):
            start, peak = slot, (alarm.threshold if alarm.operator == "==" else value)
        slot += step
    if start is not None:
        found.append((start, slot, peak))
    clipped = [(s, min(e, period.end), p) for s, e, p in found]
    return [(s, e, p) for s, e, p in clipped if e - s >= alarm.min_duration]


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
    return AlarmCalcThreshold(
        operator=operator,
        threshold=threshold,
        clear_threshold=clear,
        min_duration=timedelta(minutes=draw(st.one_of(st.just(0), st.integers(0, 45)))),
        sampling_period=timedelta(minutes=draw(st.sampled_from([10, 15, 7]))),
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[AlarmCalcThreshold, pd.Series, DateTimeRange]:
    alarm = draw(alarms())
    step = alarm.sampling_period
    first_slot = BASE + step - (BASE - EPOCH) % step  # a grid point shortly after BASE
    slots = draw(st.integers(0, 40))
    value = st.one_of(st.sampled_from(LEVELS), st.just(math.nan))
    stamps, values = [], []
    for i in range(slots):
        kind = draw(st.sampled_from(["sample"] * 6 + ["missing", "off-grid"]))
        t = first_slot + i * step
        if kind == "missing":
            continue
        stamps.append(t)
        values.append(draw(value))
        if kind == "off-grid":
            stamps.append(t + timedelta(seconds=draw(st.integers(1, step.seconds - 1))))
            values.append(draw(value))
    span = max(slots, 1) * step
    # Periods mostly cover the samples, sometimes cut them, sometimes miss them.
    start = first_slot + draw(st.integers(-10, 20)) * span / 40
    end = start + draw(st.integers(1, 60)) * span / 40
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"]))
    index = pd.DatetimeIndex(stamps, dtype=f"datetime64[{unit}, UTC]")
    return alarm, pd.Series(values, index=index, dtype="float64"), DateTimeRange(start, end)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_matches_sample_by_sample_reference(
    case: tuple[AlarmCalcThreshold, pd.Series, DateTimeRange],
) -> None:
    alarm, values, period = case
    expected = reference(alarm, values, period)

    found = alarm.find_occurrences(values, period)
    frame = alarm.find_occurrences_frame(values, period)

    assert [(o.start, o.end, o.peak_value) for o in found] == expected
    expected_frame = pd.DataFrame(
        {
            "start": pd.DatetimeIndex([s for s, _, _ in expected], dtype="datetime64[ns, UTC]"),
            "end": pd.DatetimeIndex([e for _, e, _ in expected], dtype="datetime64[ns, UTC]"),
            "peak_value": np.array([p for _, _, p in expected], dtype=np.float64),
        }
    )
    pd.testing.assert_frame_equal(frame, expected_frame)
