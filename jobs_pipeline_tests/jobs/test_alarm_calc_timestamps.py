"""`JobAlarmCalc` over features whose timestamps are off the grid: exact occurrences and the
data-quality figures and comments of its steps, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.jobs.step_details import DATA_QUALITY_DETAILS
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import MIN_COVERAGE_PERCENT
from jobs_pipeline_tests import irregular_features as data

ALARM_CALC = "Alarm Calculation"


@pytest.fixture
def db(perfdb: PerfDB) -> PerfDB:
    data.store(perfdb)
    return perfdb


def run_job(db: PerfDB, parameters: dict[str, object] | None = None) -> int:
    job = create_job(db, ALARM_CALC, parameters or data.PARAMETERS, description="irregular")
    JobAlarmCalc(job.id, perfdb=db).run()
    return job.id


def test_every_sample_counts_whatever_its_timestamp(db: PerfDB) -> None:
    job_id = run_job(db)

    assert db.occurrences.list(object_name=data.OBJECT)
    assert data.occurrences(db) == data.EXPECTED_OCCURRENCES
    steps = db.queue.get_steps(job_id)
    assert [(s.state, s.comment) for s in steps] == [(JobState.FINISHED, None)] * 3
    assert db.queue.get_job(job_id).state == JobState.FINISHED


def test_each_step_reports_its_data_quality(db: PerfDB) -> None:
    job_id = run_job(db)

    written = pd.Series([alarm for alarm, *_ in data.EXPECTED_OCCURRENCES]).value_counts()
    for step in db.queue.get_steps(job_id):
        assert step.alarm_id is not None
        assert step.details is not None
        reported = {key: step.details[key] for key in DATA_QUALITY_DETAILS}
        assert reported == data.EXPECTED_QUALITY[step.alarm_id], step.alarm_id
        assert step.details["occurrences_written"] == written[step.alarm_id]


def test_low_coverage_finishes_the_step_with_a_comment(
    db: PerfDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIN_COVERAGE_PERCENT.name, "95")

    job_id = run_job(db)

    comments = {s.alarm_id: (s.state, s.comment) for s in db.queue.get_steps(job_id)}
    assert comments == {
        data.OFFSET: (JobState.FINISHED, "coverage 93.7 % (gaps 5 min, 1 NaN sample)"),
        data.JITTER: (JobState.FINISHED, None),
        data.IRREGULAR: (JobState.FINISHED, "coverage 87.7 % (gaps 16 min 30 s, 1 NaN sample)"),
    }
    assert db.queue.get_job(job_id).state == JobState.FINISHED
    assert data.occurrences(db) == data.EXPECTED_OCCURRENCES


def test_default_threshold_is_half_the_period(db: PerfDB) -> None:
    # The samples stop at 04:05: over [00:00, 10:00) each feature covers less than half of it.
    job_id = run_job(db, {**data.PARAMETERS, "end": "2024-03-01 10:00:00"})

    comments = {s.alarm_id: (s.state, s.comment) for s in db.queue.get_steps(job_id)}
    assert comments == {
        data.OFFSET: (JobState.FINISHED, "coverage 40.0 % (gaps 5 h 50 min, 1 NaN sample)"),
        data.JITTER: (JobState.FINISHED, "coverage 38.1 % (gaps 6 h 11 min 15 s)"),
        data.IRREGULAR: (
            JobState.FINISHED,
            "coverage 37.5 % (gaps 6 h 1 min 30 s, 1 NaN sample)",
        ),
    }


def test_a_bad_threshold_setting_fails_the_steps_and_names_the_variable(
    db: PerfDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIN_COVERAGE_PERCENT.name, "half")

    job_id = run_job(db)

    message = f"{MIN_COVERAGE_PERCENT.name} must be a number from 0 to 100, got 'half'"
    steps = db.queue.get_steps(job_id)
    assert [(s.state, s.comment) for s in steps] == [(JobState.FAILED, message)] * 3
    assert data.occurrences(db) == []


def test_a_step_with_only_nan_samples_has_no_data(db: PerfDB) -> None:
    # [01:40, 01:50) holds only the irregular feature's NaN sample at 01:40; the 5-minute
    # episode before it is too short.
    parameters = {
        **data.PARAMETERS,
        "alarm_ids": [data.IRREGULAR],
        "start": "2024-03-01 01:40:00",
        "end": "2024-03-01 01:50:00",
    }

    job_id = run_job(db, parameters)

    (step,) = db.queue.get_steps(job_id)
    assert step.state == JobState.FAILED
    assert step.comment is not None
    assert step.comment.startswith("no data for feature 'irregular_pressure' of object 'WT-09'")


def test_an_episode_reaching_into_a_period_without_values_is_its_data(db: PerfDB) -> None:
    # [02:30, 02:40) holds only the offset feature's NaN sample at 02:35, and the episode that
    # the sample at 02:25 starts ends there.
    parameters = {
        **data.PARAMETERS,
        "alarm_ids": [data.OFFSET],
        "start": "2024-03-01 02:30:00",
        "end": "2024-03-01 02:40:00",
    }

    job_id = run_job(db, parameters)

    (step,) = db.queue.get_steps(job_id)
    # Data quality counts the period's own samples only: nothing covers [02:30, 02:35).
    assert (step.state, step.comment) == (
        JobState.FINISHED,
        "coverage 0.0 % (gaps 5 min, 1 NaN sample)",
    )
    assert data.occurrences(db) == [(data.OFFSET, data.at(145), data.at(155), 95.0, False)]


def test_a_feature_with_a_longer_sampling_period_covers_longer(db: PerfDB) -> None:
    # With a 20-minute period the irregular feature has no gaps (holes up to 30 minutes are
    # contiguous), so 60 -> 81 no longer ends the occurrence that starts at 37.
    db.catalog.set_sampling_period("irregular_pressure", timedelta(minutes=20))

    job_id = run_job(db, {**data.PARAMETERS, "alarm_ids": [data.IRREGULAR]})

    (step,) = db.queue.get_steps(job_id)
    assert step.details is not None
    assert (step.details["gaps"], step.details["coverage_percent"]) == (0, 94.58)
    found = [(start, end) for _, start, end, *_ in data.occurrences(db)]
    assert (data.at(37), data.at(83)) in found
