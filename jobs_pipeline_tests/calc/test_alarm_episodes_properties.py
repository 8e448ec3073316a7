"""`AlarmCalcThreshold.find_episodes` equals a sample-by-sample walk over the whole series: the
episodes that overlap the period, whole (never clipped, minimum duration over the whole
episode), the last one open when it is still active at the last sample; whatever part of the
series was read, as long as the result does not ask for more."""

from datetime import timedelta

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs_pipeline.calc import AlarmCalcThreshold, DateTimeRange, Episodes
from jobs_pipeline_tests.calc.alarm_reference import (
    Episode,
    as_datetime,
    as_ns,
    whole_series_episodes,
)
from jobs_pipeline_tests.calc.alarm_strategies import cases


def overlapping(episodes: list[Episode], period: DateTimeRange) -> list[Episode]:
    start, end = as_ns(period.start), as_ns(period.end)
    return [episode for episode in episodes if episode[1] > start and episode[0] < end]


def as_tuples(episodes: Episodes) -> list[Episode]:
    return list(
        zip(
            episodes.start.view(np.int64).tolist(),
            episodes.end.view(np.int64).tolist(),
            episodes.peak_value.tolist(),
            episodes.open.tolist(),
            strict=True,
        )
    )


def series_reference(alarm: AlarmCalcThreshold, values: pd.Series) -> list[Episode]:
    return whole_series_episodes(alarm, values.index.as_unit("ns").asi8.tolist(), values.tolist())


@settings(max_examples=300, deadline=None)
@given(cases())
def test_reading_everything_gives_the_whole_episodes_that_overlap_the_period(
    case: tuple[AlarmCalcThreshold, pd.Series, DateTimeRange],
) -> None:
    alarm, values, period = case
    stamps = values.index.as_unit("ns").asi8
    everything = DateTimeRange(
        min(period.start, as_datetime(int(stamps.min()) if len(stamps) else as_ns(period.start))),
        max(period.end, as_datetime(int(stamps.max()) + 1_000) if len(stamps) else period.end),
    )

    found = alarm.find_episodes(values, period, everything, more_before=False, more_after=False)

    assert not found.earlier_needed and not found.later_needed
    assert as_tuples(found) == overlapping(series_reference(alarm, values), period)


@settings(max_examples=400, deadline=None)
@given(cases(), st.integers(0, 60), st.integers(0, 60))
def test_a_partial_read_is_exact_unless_it_asks_for_more(
    case: tuple[AlarmCalcThreshold, pd.Series, DateTimeRange], before: int, after: int
) -> None:
    alarm, values, period = case
    step = alarm.sampling_period / 4
    read = DateTimeRange(period.start - before * step, period.end + after * step)
    stamps = values.index
    more_before = bool((stamps < read.start).any())
    more_after = bool((stamps >= read.end).any())

    found = alarm.find_episodes(
        values, period, read, more_before=more_before, more_after=more_after
    )

    expected = overlapping(series_reference(alarm, values), period)
    if not found.earlier_needed and not found.later_needed:
        assert as_tuples(found) == expected
    inside = stamps[(stamps >= read.start) & (stamps < read.end)]
    if found.earlier_needed:
        assert more_before
        if read.start + 1.5 * alarm.sampling_period <= period.start:
            # Counted from the first sample read, which may continue an earlier one.
            assert found.start[0] == inside[0].as_unit("ns").to_datetime64()
    if found.later_needed:
        assert more_after and found.open[-1]
        assert found.end[-1] == (inside[-1] + alarm.sampling_period).as_unit("ns").to_datetime64()


def test_an_episode_across_the_period_start_is_found_whole() -> None:
    # 10-minute samples from 22:00 to 02:00; above 80 from 22:40 to 01:20 (2 h 40 min).
    stamps = pd.date_range("2024-03-01 22:00", "2024-03-02 02:00", freq="10min", tz="UTC")
    hot = (stamps >= "2024-03-01 22:40Z") & (stamps < "2024-03-02 01:20Z")
    values = pd.Series(np.where(hot, 90.0, 70.0), index=stamps)
    alarm = AlarmCalcThreshold(operator=">", threshold=80, min_duration=timedelta(hours=2))
    day = DateTimeRange(stamps[0].replace(day=2, hour=0), stamps[0].replace(day=3, hour=0))
    read = DateTimeRange(stamps[0], day.end)

    found = alarm.find_episodes(values, day, read, more_before=False, more_after=False)

    assert as_tuples(found) == [
        (as_ns(stamps[4]), as_ns(stamps[20]), 90.0, False),  # 22:40 to 01:20
    ]
    # The day before finds it too, whole, reading past its end.
    before = DateTimeRange(read.start, day.start)
    found = alarm.find_episodes(values, before, read, more_before=False, more_after=False)
    assert as_tuples(found) == [(as_ns(stamps[4]), as_ns(stamps[20]), 90.0, False)]
