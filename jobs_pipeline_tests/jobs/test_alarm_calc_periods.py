"""Period independence through the real job type, on SQLite and PostgreSQL: for the same data,
the stored occurrences of an (object, alarm) are those of one job over the union of the periods,
however the time axis was cut into jobs, in whatever order they ran, with overlapping periods,
repeated jobs and jobs running at the same time; and they are the whole episodes that a
sample-by-sample walk over the series finds."""

from __future__ import annotations

import itertools
import math
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs_pipeline.calc import AlarmCalcThreshold, DateTimeRange
from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.occurrences import OCCURRENCES
from jobs_pipeline.settings import ALARM_LOOK_BACK
from jobs_pipeline_tests.calc.alarm_reference import as_datetime, as_ns, whole_series_episodes
from jobs_pipeline_tests.calc.alarm_strategies import LEVELS, alarms, steps

ALARM_CALC = "Alarm Calculation"
BASE = datetime(2024, 3, 1, tzinfo=UTC)
SECOND = 10**9
Stored = tuple[datetime, datetime, float | None, bool]  # start, end, peak, open
_examples = itertools.count()


@dataclass(frozen=True)
class History:
    """One feature's samples, an alarm on it and periods to calculate it over."""

    alarm_settings: dict[str, object]
    sampling_seconds: int
    stamps: list[int]  # nanoseconds since the epoch, whole seconds
    values: list[float]
    union: DateTimeRange
    periods: list[DateTimeRange]  # in the order the jobs run


@st.composite
def histories(draw: st.DrawFn) -> History:
    alarm = draw(alarms().filter(lambda a: a.sampling_period.total_seconds() >= 60))
    period = int(alarm.sampling_period.total_seconds()) * SECOND
    kind = draw(st.sampled_from(["regular", "offset", "jittered", "irregular"]))
    count = draw(st.integers(3, 40))
    base = int(BASE.timestamp()) * SECOND
    if kind == "irregular":
        # Denser than the sampling period, on it, jittered, around 1.5 periods, and holes.
        t, stamps = base, []
        for _ in range(count):
            stamps.append(t)
            t += draw(steps(period, SECOND))
    else:
        offset = 0 if kind == "regular" else draw(st.integers(1, period // SECOND - 1)) * SECOND
        jitter = period // SECOND // 10 if kind == "jittered" else 0
        holes = draw(st.sets(st.integers(0, count - 1), max_size=count // 4))
        stamps = [
            base + offset + k * period + draw(st.integers(-jitter, jitter)) * SECOND
            for k in range(count)
            if k not in holes
        ]
    # Values that stay a while: each repeats the one before or takes a new level.
    values: list[float] = []
    for _ in stamps:
        if values and draw(st.booleans()):
            values.append(values[-1])
        else:
            values.append(draw(st.sampled_from([*LEVELS, math.nan])))
    first, last = stamps[0] // SECOND, stamps[-1] // SECOND
    span = max(last - first, 1)
    # The union reaches a little beyond the samples or leaves some of them out.
    start = first + draw(st.integers(-span // 4, span // 2))
    end = max(start + 1, last - draw(st.integers(-span // 4, span // 2)))
    union = DateTimeRange(as_second(start), as_second(end))
    cuts = (
        sorted(set(draw(st.lists(st.integers(start + 1, end - 1), max_size=6))))
        if end - start > 1
        else []
    )
    bounds = [start, *cuts, end]
    periods = [DateTimeRange(as_second(a), as_second(b)) for a, b in itertools.pairwise(bounds)]
    # Overlapping periods inside the union, and pieces run again.
    for _ in range(draw(st.integers(0, 2))):
        a = draw(st.integers(start, end - 1))
        periods.append(DateTimeRange(as_second(a), as_second(draw(st.integers(a + 1, end)))))
    periods += draw(st.lists(st.sampled_from(periods), max_size=1))
    periods = draw(st.permutations(periods))
    return History(
        alarm_settings={
            "operator": alarm.operator,
            "threshold": alarm.threshold,
            "clear_threshold": alarm.clear_threshold,
            "min_duration": alarm.min_duration,
        },
        sampling_seconds=period // SECOND,
        stamps=stamps,
        values=values,
        union=union,
        periods=list(periods),
    )


def as_second(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class Setup:
    """Names of one example's objects, feature and alarm in a shared database."""

    objects: tuple[str, str]
    feature: str
    alarm_id: int


def store(perfdb: PerfDB, history: History) -> Setup:
    """The same samples for two objects of a feature and alarm of its own."""
    number = next(_examples)
    setup = Setup((f"P{number}-A", f"P{number}-B"), f"feature_{number}", 50_000 + number)
    stamps = pd.DatetimeIndex(np.array(history.stamps, dtype="M8[ns]"), tz=UTC)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "object": name,
                    "feature": setup.feature,
                    "timestamp": stamps,
                    "value": history.values,
                }
            )
            for name in setup.objects
        ]
    )
    perfdb.values.import_frame(frame, sampling_period=timedelta(seconds=history.sampling_seconds))
    perfdb.catalog.define_alarm(
        alarm_id=setup.alarm_id,
        name=f"alarm {number}",
        feature=setup.feature,
        **history.alarm_settings,  # type: ignore[arg-type]
    )
    return setup


def run_job(perfdb: PerfDB, object_name: str, alarm_id: int, period: DateTimeRange) -> None:
    start, end = period.isoformat()
    parameters = {
        "object_names": [object_name],
        "alarm_ids": [alarm_id],
        "start": start,
        "end": end,
    }
    job = create_job(perfdb, ALARM_CALC, parameters, description="periods")
    JobAlarmCalc(job.id, perfdb=perfdb).run()


def stored(perfdb: PerfDB, object_name: str) -> list[Stored]:
    return [
        (o.start, o.end, o.peak_value, o.open)
        for o in perfdb.occurrences.list(object_name=object_name)
    ]


def walked(history: History, setup: Setup, perfdb: PerfDB) -> list[Stored]:
    """The independent reference: the whole episodes of the series that overlap the union."""
    alarm = perfdb.catalog.alarms([setup.alarm_id])[setup.alarm_id]
    rule = AlarmCalcThreshold(
        operator=alarm.operator,
        threshold=alarm.threshold,
        clear_threshold=alarm.clear_threshold,
        min_duration=alarm.min_duration,
        sampling_period=alarm.feature.sampling_period,
    )
    union_start, union_end = as_ns(history.union.start), as_ns(history.union.end)
    return [
        (as_datetime(start), as_datetime(end), peak, is_open)
        for start, end, peak, is_open in whole_series_episodes(rule, history.stamps, history.values)
        if end > union_start and start < union_end
    ]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
def test_jobs_over_any_cut_in_any_order_store_what_one_job_over_the_union_does(
    perfdb: PerfDB, history: History
) -> None:
    setup = store(perfdb, history)
    pieces, whole = setup.objects

    for period in history.periods:
        run_job(perfdb, pieces, setup.alarm_id, period)
    run_job(perfdb, whole, setup.alarm_id, history.union)

    expected = walked(history, setup, perfdb)
    assert stored(perfdb, whole) == expected
    assert stored(perfdb, pieces) == expected


# --- the example: two days, three objects ------------------------------------------

DAY = timedelta(days=1)
HOT, BAND = 90.0, 78.0  # above 80 and inside the hysteresis band (75, 80]
LONG = 7201  # > 80 for at least 2 hours
SWAY = 7202  # > 80, stays active while > 75
# (start, end, level) in hours from BASE; anything else is 70.
SHAPES = [
    (3.0, 3.8, HOT),
    (5.8, 6.4, HOT),  # across 06:00
    (8.0, 10.5, HOT),  # long enough
    (11.5, 11.9, HOT),
    (11.9, 12.7, BAND),  # the hysteresis tail across 12:00
    (22 + 2 / 3, 25 + 1 / 3, HOT),  # 22:40 to 01:20: 2 h 40 min across midnight
    (29.5, 29.9, BAND),
    (29.9, 30.4, HOT),  # starts in the band before 06:00
    (40.0, 43.0, HOT),
    (47.5, 48.0, HOT),  # still active at the last sample
]


def level(hours: np.ndarray) -> np.ndarray:
    values = np.full(len(hours), 70.0)
    for start, end, value in SHAPES:
        values[(hours >= start) & (hours < end)] = value
    return values


def two_days() -> pd.DataFrame:
    """Regular, jittered and irregular (1 to 14 minutes apart, with holes) samples."""
    rng = np.random.default_rng(17)
    grid = np.arange(0, 48 * 3600, 600)
    spaced = np.cumsum(rng.integers(60, 14 * 60 + 1, size=600))
    spaced = spaced[spaced < 48 * 3600]
    spaced = spaced[(spaced < 15 * 3600) | (spaced > 15.5 * 3600)]  # a hole
    seconds = {
        "REG": grid,
        "JIT": grid + rng.integers(-40, 41, size=len(grid)),
        "IRR": spaced,
    }
    frames = [
        pd.DataFrame(
            {
                "object": name,
                "feature": "temperature",
                "timestamp": pd.Timestamp(BASE) + pd.to_timedelta(stamps, unit="s"),
                "value": level(stamps / 3600),
            }
        )
        for name, stamps in seconds.items()
    ]
    return pd.concat(frames, ignore_index=True)


def define_alarms(perfdb: PerfDB) -> None:
    perfdb.catalog.define_alarm(
        alarm_id=LONG,
        name="Hot for 2 hours",
        feature="temperature",
        operator=">",
        threshold=80,
        min_duration=timedelta(hours=2),
    )
    perfdb.catalog.define_alarm(
        alarm_id=SWAY,
        name="Hot",
        feature="temperature",
        operator=">",
        threshold=80,
        clear_threshold=75,
    )


def run_fleet(perfdb: PerfDB, period: DateTimeRange) -> None:
    start, end = period.isoformat()
    parameters = {
        "object_names": ["REG", "JIT", "IRR"],
        "alarm_ids": [LONG, SWAY],
        "start": start,
        "end": end,
    }
    job = create_job(perfdb, ALARM_CALC, parameters, description="two days")
    assert JobAlarmCalc(job.id, perfdb=perfdb).run() == []


def everything(perfdb: PerfDB) -> list[tuple[str, int, datetime, datetime, float | None, bool]]:
    return [
        (o.object_name, o.alarm_id, o.start, o.end, o.peak_value, o.open)
        for o in perfdb.occurrences.list()
    ]


def forget_occurrences(perfdb: PerfDB) -> None:
    with perfdb.engine.begin() as connection:
        connection.execute(OCCURRENCES.delete())


def test_two_days_give_the_same_occurrences_however_they_are_cut(perfdb: PerfDB) -> None:
    data = two_days()
    both_days = DateTimeRange(BASE, BASE + 2 * DAY)
    first_day, second_day = both_days.split(DAY)

    # Data that arrives day by day, each day calculated when its data is in.
    perfdb.values.import_frame(data[data["timestamp"] < BASE + DAY])
    define_alarms(perfdb)
    run_fleet(perfdb, first_day)
    pending = [o for o in everything(perfdb) if o[5]]
    perfdb.values.import_frame(data[data["timestamp"] >= BASE + DAY])
    run_fleet(perfdb, second_day)
    day_by_day = everything(perfdb)

    forget_occurrences(perfdb)
    run_fleet(perfdb, both_days)
    one_job = everything(perfdb)

    forget_occurrences(perfdb)
    run_fleet(perfdb, first_day)
    run_fleet(perfdb, second_day)
    two_jobs = everything(perfdb)

    forget_occurrences(perfdb)
    pieces = both_days.split(timedelta(hours=6))
    random.Random(3).shuffle(pieces)
    for piece in pieces:
        run_fleet(perfdb, piece)
    eight_jobs = everything(perfdb)

    across_midnight = (
        BASE + timedelta(hours=22, minutes=40),
        BASE + timedelta(hours=25, minutes=20),
    )
    assert ("REG", LONG, *across_midnight, HOT, False) in one_job
    # The first day's job left it open (1 h 20 min so far); the second one closed it.
    assert ("REG", LONG, across_midnight[0], BASE + DAY, HOT, True) in pending
    # Per object: 4 of the long alarm, 8 of the other; both still active at the last sample.
    assert len(one_job) == 36
    assert [o[:2] for o in one_job if o[5]] == [
        (name, alarm) for name in ("IRR", "JIT", "REG") for alarm in (LONG, SWAY)
    ]
    # The hysteresis tail across 12:00 keeps the morning's episode going.
    assert (
        "REG",
        SWAY,
        BASE + timedelta(hours=11, minutes=30),
        BASE + timedelta(hours=12, minutes=50),
        HOT,
        False,
    ) in one_job
    assert two_jobs == one_job
    assert eight_jobs == one_job
    assert day_by_day == one_job


# --- repeated and simultaneous jobs, and the look-back ----------------------------------------


def test_jobs_over_the_same_work_at_once_leave_one_set_of_rows(perfdb: PerfDB) -> None:
    perfdb.values.import_frame(two_days())
    define_alarms(perfdb)
    both_days = DateTimeRange(BASE, BASE + 2 * DAY)
    run_fleet(perfdb, both_days)
    expected = everything(perfdb)
    forget_occurrences(perfdb)

    # The same period twice and overlapping ones, all at once.
    periods = [both_days, both_days, *both_days.split(timedelta(hours=7))]
    jobs = []
    for period in periods:
        start, end = period.isoformat()
        parameters = {
            "object_names": ["REG", "JIT", "IRR"],
            "alarm_ids": [LONG, SWAY],
            "start": start,
            "end": end,
        }
        jobs.append(create_job(perfdb, ALARM_CALC, parameters, description="at once").id)
    barrier = threading.Barrier(len(jobs))
    failed: list[list[int]] = []

    def run(job_id: int) -> None:
        barrier.wait()
        failed.append(JobAlarmCalc(job_id, perfdb=perfdb).run())

    threads = [threading.Thread(target=run, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert failed == [[]] * len(jobs)
    assert everything(perfdb) == expected


def test_an_episode_longer_than_the_look_back_says_so_and_continues_the_stored_one(
    perfdb: PerfDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    perfdb.values.import_frame(two_days())
    define_alarms(perfdb)
    run_fleet(perfdb, DateTimeRange(BASE, BASE + 2 * DAY))
    expected = [o for o in everything(perfdb) if o[:2] == ("REG", SWAY)]

    forget_occurrences(perfdb)
    # 40:00 to 43:00 is three hours long; hourly jobs in order with a look-back of one hour.
    monkeypatch.setenv(ALARM_LOOK_BACK.name, "1")
    hours = DateTimeRange(BASE, BASE + 2 * DAY).split(timedelta(hours=1))
    notes = []
    for hour in hours:
        start, end = hour.isoformat()
        parameters = {"object_names": ["REG"], "alarm_ids": [SWAY], "start": start, "end": end}
        job = create_job(perfdb, ALARM_CALC, parameters, description="hourly")
        JobAlarmCalc(job.id, perfdb=perfdb).run()
        (step,) = perfdb.queue.get_steps(job.id)
        assert step.details is not None
        notes.append(step.details.get("look_back_exceeded"))

    assert [o for o in everything(perfdb) if o[:2] == ("REG", SWAY)] == expected
    exceeded = [hour.start for hour, note in zip(hours, notes, strict=True) if note]
    # The hour before 43:00 still reaches back to 40:00; those after 41:00 do not.
    assert BASE + timedelta(hours=42) in exceeded
    assert notes[42] is not None and "more than 1 h (the look-back) before the period" in notes[42]
    assert BASE + timedelta(hours=38) not in exceeded


def test_a_bad_look_back_setting_fails_the_steps_and_names_the_variable(
    perfdb: PerfDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    perfdb.values.import_frame(two_days())
    define_alarms(perfdb)
    monkeypatch.setenv(ALARM_LOOK_BACK.name, "a week")
    parameters = {
        "object_names": ["REG"],
        "alarm_ids": [LONG],
        "start": "2024-03-01 00:00:00",
        "end": "2024-03-02 00:00:00",
    }
    job = create_job(perfdb, ALARM_CALC, parameters, description="bad setting")

    assert len(JobAlarmCalc(job.id, perfdb=perfdb).run()) == 1

    (step,) = perfdb.queue.get_steps(job.id)
    named = f"{ALARM_LOOK_BACK.name} must be a positive number of hours, got 'a week'"
    assert step.comment == named
    assert everything(perfdb) == []
