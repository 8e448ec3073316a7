"""`JobAlarmCalc` through the whole job path: parameters, steps, exact occurrences, failures,
idempotent recalculation, and the demo fleet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.calc import AlarmCalcThreshold, DateTimeRange, Episodes
from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import generate_fleet
from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.jobs.alarm_calc import parse_period
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidParameters, NotFound
from jobs_pipeline.perfdb.records import AlarmOccurrence
from jobs_pipeline.perfdb.states import JobState

ALARM_CALC = "Alarm Calculation"
NAN = math.nan
T0 = datetime(2024, 3, 1, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)

# Twelve 10-minute samples from T0 and two just outside the 2-hour period that violate every
# temperature alarm: the one after it extends the last episode, which is still active at that
# last sample; the one before it is an episode of its own that ends at the period start.
TEMPERATURE_WT01 = [70, 81, 85, 79, 70, 90, 91, NAN, 92, 70, 70, 95]
TEMPERATURE_WT02 = [70, 70, 70, 70, 88, 70, 70, 70, 70, 70, 70, 70]
PITCH_WT01 = [0, 0, 0, 0, 0, 0, 45, 40, 0, 0, 0, 0]

HIGH = 7001  # temperature > 80
HYSTERESIS = 7002  # temperature > 80, clears at <= 75, at least 20 minutes
PITCH = 7003  # pitch > 30; WT-02 has no pitch data in the period
OTHER = 7004  # temperature < 0, not part of any job here


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rows(
    obj: str, feature: str, values: Sequence[float], first: datetime = T0
) -> list[dict[str, Any]]:
    return [
        {"object": obj, "feature": feature, "timestamp": first + i * TEN_MINUTES, "value": value}
        for i, value in enumerate(values)
    ]


@pytest.fixture
def db(perfdb: PerfDB) -> PerfDB:
    """Two turbines with the hand-made samples above and four alarm definitions."""
    frame = pd.DataFrame(
        [
            *rows("WT-01", "temperature", TEMPERATURE_WT01),
            *rows("WT-01", "temperature", [99], at(-10)),
            *rows("WT-01", "temperature", [99], at(120)),
            *rows("WT-01", "pitch", PITCH_WT01),
            # Would trip every temperature alarm if a step read the wrong feature.
            *rows("WT-01", "power", [1000.0] * 12),
            *rows("WT-02", "temperature", TEMPERATURE_WT02),
            # WT-02's only pitch sample inside the period is "no data"; the other is outside.
            *rows("WT-02", "pitch", [NAN]),
            *rows("WT-02", "pitch", [50], at(-60)),
        ]
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    perfdb.values.import_frame(frame)
    catalog = perfdb.catalog
    catalog.define_alarm(
        alarm_id=HIGH, name="Temperature high", feature="temperature", operator=">", threshold=80
    )
    catalog.define_alarm(
        alarm_id=HYSTERESIS,
        name="Temperature high (hysteresis)",
        feature="temperature",
        operator=">",
        threshold=80,
        clear_threshold=75,
        min_duration=timedelta(minutes=20),
    )
    catalog.define_alarm(
        alarm_id=PITCH, name="Pitch angle high", feature="pitch", operator=">", threshold=30
    )
    catalog.define_alarm(
        alarm_id=OTHER, name="Temperature low", feature="temperature", operator="<", threshold=0
    )
    return perfdb


def create_alarm_job(
    db: PerfDB,
    objects: list[str],
    alarms: list[int],
    start: str = "2024-03-01 00:00:00",
    end: str = "2024-03-01 02:00:00",
) -> int:
    parameters = {"object_names": objects, "alarm_ids": alarms, "start": start, "end": end}
    return create_job(db, ALARM_CALC, parameters, description="March recalculation").id


def occurrence(
    obj: str,
    alarm: int,
    start: int,
    end: int,
    peak: float,
    step: int | None = None,
    *,
    is_open: bool = False,
) -> AlarmOccurrence:
    return AlarmOccurrence(
        object_name=obj,
        alarm_id=alarm,
        start=at(start),
        end=at(end),
        peak_value=peak,
        step_id=step,
        open=is_open,
    )


# --- parameters ------------------------------------------------------------------------------


def test_seed_format_is_utc_and_iso_offsets_are_honoured() -> None:
    seed = parse_period({"start": "2024-03-01 00:00:00", "end": "2024-03-01 02:00:00"})
    iso = parse_period({"start": "2024-03-01T01:00:00+01:00", "end": "2024-03-01T02:00:00Z"})

    assert seed == DateTimeRange(at(0), at(120))
    assert iso == seed


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"start": "2024-03-01 00:00:00", "end": "01/03/2024"}, "'end'"),
        ({"start": "2024-02-30 00:00:00", "end": "2024-03-01 00:00:00"}, "'start'"),
        ({"start": "2024-03-01 02:00:00", "end": "2024-03-01 02:00:00"}, "'start'/'end'"),
        ({"end": "2024-03-01 02:00:00"}, "'start' is missing"),
    ],
)
def test_bad_period_names_the_parameter(parameters: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidParameters, match=message):
        parse_period(parameters)


def test_every_parameter_is_required_and_checked_before_the_job_exists(db: PerfDB) -> None:
    valid = {
        "object_names": ["WT-01"],
        "alarm_ids": [HIGH],
        "start": "2024-03-01 00:00:00",
        "end": "2024-03-01 02:00:00",
    }
    for name in valid:
        missing = {key: value for key, value in valid.items() if key != name}
        with pytest.raises(InvalidParameters, match=name):
            create_job(db, ALARM_CALC, missing)
    with pytest.raises(NotFound, match="WT-77"):
        create_job(db, ALARM_CALC, {**valid, "object_names": ["WT-01", "WT-77"]})
    with pytest.raises(NotFound, match="9999"):
        create_job(db, ALARM_CALC, {**valid, "alarm_ids": [9999]})
    with pytest.raises(InvalidParameters, match="'end'"):
        create_job(db, ALARM_CALC, {**valid, "end": "tomorrow"})

    assert db.queue.list_jobs() == []


# --- steps and occurrences -------------------------------------------------------------------


def test_one_step_per_object_and_alarm_in_parameter_order(db: PerfDB) -> None:
    job_id = create_alarm_job(db, ["WT-02", "WT-01"], [HYSTERESIS, HIGH, PITCH])
    job = JobAlarmCalc(job_id, perfdb=db)

    steps = db.queue.get_steps(job_id)
    assert [(step.object_name, step.alarm_id) for step in steps] == [
        ("WT-02", HYSTERESIS),
        ("WT-02", HIGH),
        ("WT-02", PITCH),
        ("WT-01", HYSTERESIS),
        ("WT-01", HIGH),
        ("WT-01", PITCH),
    ]
    temperature = db.catalog.get_feature("temperature").id
    pitch = db.catalog.get_feature("pitch").id
    assert [step.feature_id for step in steps] == [temperature, temperature, pitch] * 2
    assert job.job_step_ids == [step.id for step in steps]
    assert job.period == DateTimeRange(at(0), at(120))


def test_job_writes_exactly_the_expected_occurrences(db: PerfDB) -> None:
    # Occurrences from before: those that overlap the period or what the job finds are replaced.
    overlapping_before = (at(-10), at(20), 99.0)
    stale = (at(30), at(40), 1.0)
    part_of_the_last = (at(120), at(130), 99.0)
    untouched = (at(-60), at(-40), 50.0)
    wt01 = db.catalog.object_ids(["WT-01"])["WT-01"]
    db.occurrences.replace(
        object_id=wt01,
        alarm_id=HIGH,
        start=at(-60),
        end=at(180),
        spans=[untouched, overlapping_before, stale, part_of_the_last],
    )
    db.occurrences.replace(
        object_id=wt01, alarm_id=OTHER, start=at(0), end=at(60), spans=[(at(0), at(60), -5.0)]
    )
    job_id = create_alarm_job(db, ["WT-02", "WT-01"], [HYSTERESIS, HIGH, PITCH])
    job = JobAlarmCalc(job_id, perfdb=db)
    step = {(s.object_name, s.alarm_id): s.id for s in db.queue.get_steps(job_id)}

    failed = job.run()

    assert failed == [step["WT-02", PITCH]]
    assert db.occurrences.list() == [
        occurrence("WT-01", HIGH, -60, -40, 50.0),
        occurrence("WT-01", HIGH, 10, 30, 85.0, step["WT-01", HIGH]),
        occurrence("WT-01", HIGH, 50, 70, 91.0, step["WT-01", HIGH]),  # ends at the NaN
        occurrence("WT-01", HIGH, 80, 90, 92.0, step["WT-01", HIGH]),
        # Goes on past the period end, active at the last sample there is.
        occurrence("WT-01", HIGH, 110, 130, 99.0, step["WT-01", HIGH], is_open=True),
        # 79 keeps the hysteresis alarm active; the 10-minute occurrence is too short, the
        # open one may yet grow long enough.
        occurrence("WT-01", HYSTERESIS, 10, 40, 85.0, step["WT-01", HYSTERESIS]),
        occurrence("WT-01", HYSTERESIS, 50, 70, 91.0, step["WT-01", HYSTERESIS]),
        occurrence("WT-01", HYSTERESIS, 110, 130, 99.0, step["WT-01", HYSTERESIS], is_open=True),
        occurrence("WT-01", PITCH, 60, 80, 45.0, step["WT-01", PITCH]),
        occurrence("WT-01", OTHER, 0, 60, -5.0),
        occurrence("WT-02", HIGH, 40, 50, 88.0, step["WT-02", HIGH]),
    ]
    for found in db.occurrences.list():
        assert found.start.utcoffset() == found.end.utcoffset() == timedelta(0)
    details = {s.id: s.details for s in db.queue.get_steps(job_id)}
    assert details[step["WT-01", HIGH]]["open_occurrences"] == 1
    assert details[step["WT-01", HIGH]]["occurrences_written"] == 4


def test_feature_without_data_fails_only_its_step(db: PerfDB) -> None:
    job_id = create_alarm_job(db, ["WT-02", "WT-01"], [HYSTERESIS, HIGH, PITCH])
    JobAlarmCalc(job_id, perfdb=db).run()

    steps = db.queue.get_steps(job_id)
    states = {(s.object_name, s.alarm_id): (s.state, s.comment) for s in steps}
    state, comment = states.pop(("WT-02", PITCH))
    assert state == JobState.FAILED
    assert comment is not None
    assert "'pitch'" in comment and "'WT-02'" in comment
    assert set(states.values()) == {(JobState.FINISHED, None)}
    job = db.queue.get_job(job_id)
    assert (job.state, job.comment) == (JobState.FAILED, "1 (16.67%) steps failed")
    assert all(s.attempts == 1 and s.finished is not None for s in steps)


def test_iso_period_with_offset_finds_whole_episodes_across_its_end(db: PerfDB) -> None:
    # 01:00+01:00 to 02:00+01:00 is [00:00Z, 01:00Z); the episode from 00:50 ends at the NaN.
    job_id = create_alarm_job(
        db, ["WT-01"], [HIGH], start="2024-03-01T01:00:00+01:00", end="2024-03-01T02:00:00+01:00"
    )
    job = JobAlarmCalc(job_id, perfdb=db)
    (step_id,) = job.job_step_ids

    assert job.run() == []

    assert db.occurrences.list() == [
        occurrence("WT-01", HIGH, 10, 30, 85.0, step_id),
        occurrence("WT-01", HIGH, 50, 70, 91.0, step_id),
    ]
    (step,) = db.queue.get_steps(job_id)
    assert step.details is not None
    # Counted over the period alone; the samples around it were read as well.
    assert step.details["samples_read"] == 6
    assert step.details["read_start"] < "2024-03-01T00:00:00+00:00"
    assert step.details["read_end"] > "2024-03-01T01:10:00+00:00"


def test_recalculation_replaces_the_same_rows(db: PerfDB) -> None:
    job_id = create_alarm_job(db, ["WT-01", "WT-02"], [HIGH, HYSTERESIS])
    assert JobAlarmCalc(job_id, perfdb=db).run() == []
    first = db.occurrences.list()
    assert len(first) == 8

    db.queue.queue_job(job_id)
    assert JobAlarmCalc(job_id, perfdb=db).run() == []

    assert db.occurrences.list() == first
    steps = db.queue.get_steps(job_id)
    assert [(s.state, s.attempts) for s in steps] == [(JobState.FINISHED, 2)] * 4
    job = db.queue.get_job(job_id)
    assert (job.state, job.queue_count) == (JobState.FINISHED, 1)

    # New data for the period: the next recalculation drops the occurrence it no longer finds.
    fixed = pd.DataFrame(rows("WT-02", "temperature", [70.0], at(40)))
    fixed["timestamp"] = pd.to_datetime(fixed["timestamp"], utc=True)
    db.values.import_frame(fixed)
    db.queue.queue_job(job_id)
    assert JobAlarmCalc(job_id, perfdb=db).run() == []

    assert db.occurrences.list() == [o for o in first if o.object_name != "WT-02"]


class BrokenCalculation(AlarmCalcThreshold):
    """Finds one valid occurrence and one that the database's check constraint rejects."""

    def find_episodes(self, *args: Any, **kwargs: Any) -> Episodes:
        found = super().find_episodes(*args, **kwargs)
        empty = np.datetime64(at(100).replace(tzinfo=None), "ns")
        return found._replace(
            start=np.append(found.start[:1], empty),
            end=np.append(found.end[:1], empty),
            peak_value=np.append(found.peak_value[:1], 1.0),
            open=np.append(found.open[:1], False),
        )


def test_failed_write_leaves_the_previous_occurrences(
    db: PerfDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    wt01 = db.catalog.object_ids(["WT-01"])["WT-01"]
    db.occurrences.replace(
        object_id=wt01, alarm_id=HIGH, start=at(0), end=at(120), spans=[(at(30), at(40), 1.0)]
    )
    before = db.occurrences.list()
    monkeypatch.setattr("jobs_pipeline.jobs.alarm_calc.AlarmCalcThreshold", BrokenCalculation)
    job_id = create_alarm_job(db, ["WT-01"], [HIGH])

    assert len(JobAlarmCalc(job_id, perfdb=db).run()) == 1

    # Delete and insert are one transaction: nothing of the failed replacement is visible.
    assert db.occurrences.list() == before
    (step,) = db.queue.get_steps(job_id)
    assert step.state == JobState.FAILED
    assert step.comment is not None
    assert step.comment.startswith("Unknown error, please check the logs: ")


# --- the demo fleet --------------------------------------------------------------------------


def test_demo_fleet_job_finds_every_alarm_as_the_calculation_does(perfdb: PerfDB) -> None:
    fleet = generate_fleet(objects=3, days=7)
    store_fleet(perfdb, fleet)
    alarm_ids = [alarm.alarm_id for alarm in fleet.alarms]
    job = create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": fleet.object_names,
            "alarm_ids": alarm_ids,
            "start": fleet.start.isoformat(),
            "end": fleet.end.isoformat(),
        },
        description="demo",
    )

    assert JobAlarmCalc(job.id, perfdb=perfdb).run() == []

    found = perfdb.occurrences.list()
    assert {o.alarm_id for o in found} == set(alarm_ids)
    assert len(perfdb.queue.get_steps(job.id)) == len(fleet.object_names) * len(alarm_ids)
    # The database round trip loses nothing: the same as the calculation on the generated frame.
    period = DateTimeRange(fleet.start, fleet.end)
    expected: list[tuple[str, int, datetime, datetime, float]] = []
    for name in fleet.object_names:
        for alarm in fleet.alarms:
            selected = fleet.values[
                (fleet.values["object"] == name) & (fleet.values["feature"] == alarm.feature)
            ]
            series = pd.Series(selected["value"].to_numpy(), index=selected["timestamp"])
            rule = AlarmCalcThreshold(
                operator=alarm.operator,
                threshold=alarm.threshold,
                clear_threshold=alarm.clear_threshold,
                min_duration=alarm.min_duration,
            )
            # Every sample is in the period: the whole episodes, open at the end of the data.
            episodes = rule.find_episodes(
                series, period, period, more_before=False, more_after=False
            )
            expected.extend(
                (name, alarm.alarm_id, start, end, peak, bool(is_open))
                for start, end, peak, is_open in zip(
                    pd.DatetimeIndex(episodes.start, tz="UTC"),
                    pd.DatetimeIndex(episodes.end, tz="UTC"),
                    episodes.peak_value,
                    episodes.open,
                    strict=True,
                )
            )
    assert [
        (o.object_name, o.alarm_id, o.start, o.end, o.peak_value, o.open) for o in found
    ] == sorted(expected, key=lambda row: row[:3])
