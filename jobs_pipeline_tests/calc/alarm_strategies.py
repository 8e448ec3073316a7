"""Hypothesis strategies for alarm calculations: random rules, and random series whose
timestamps are off the hour, jittered, denser than the sampling period and full of holes of every
size around the contiguity limit of 1.5 sampling periods."""

from __future__ import annotations

import math
from datetime import UTC, timedelta

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from jobs_pipeline.calc import OPERATORS, AlarmCalcThreshold, DateTimeRange
from jobs_pipeline_tests.calc.alarm_reference import as_datetime

BASE_NS = 1_709_251_200 * 10**9  # 2024-03-01T00:00:00Z
NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
LEVELS = [-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0]


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
