"""Features whose timestamps are off the grid, through Dagster on SQLite and PostgreSQL: the queue
sensor's run request executed in process, and `jobs-pipeline job run`. Both write exactly the
occurrences of the alarm rule, and the step ops carry the data-quality figures as metadata."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from jobs_pipeline.calc import format_duration
from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import create_job
from jobs_pipeline.jobs.step_details import SHOWN_DETAILS
from jobs_pipeline.orchestration.mapping_keys import mapping_key
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests import irregular_features as data
from jobs_pipeline_tests.orchestration.alarm_fleet import ALARM_CALC
from jobs_pipeline_tests.orchestration.perfdb_job_config import perfdb_job_resources
from jobs_pipeline_tests.orchestration.processes import (
    INTERPRETER_BIN,
    REPO_ROOT,
    dagster_environment,
    make_dagster_home,
)
from jobs_pipeline_tests.orchestration.sensor_ticks import tick


@pytest.fixture
def stored(perfdb: PerfDB) -> PerfDB:
    data.store(perfdb)
    return perfdb


def expected_metadata(alarm_id: int) -> dict[str, Any]:
    written = sum(1 for alarm, *_ in data.EXPECTED_OCCURRENCES if alarm == alarm_id)
    return {**data.EXPECTED_QUALITY[alarm_id], "occurrences_written": written}


def step_output_metadata(result: dg.ExecuteInProcessResult, step_key: str) -> dict[str, Any]:
    [metadata] = [
        event.step_output_data.metadata
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT" and event.step_key == step_key
    ]
    return dict(metadata)


def step_metadata(result: dg.ExecuteInProcessResult, step_key: str) -> dict[str, Any]:
    metadata = step_output_metadata(result, step_key)
    return {name: metadata[name].value for name in SHOWN_DETAILS}


def test_a_sensor_run_writes_the_occurrences_of_the_rule_and_shows_data_quality(
    stored: PerfDB,
    perfdb_url: str,
    perfdb_resource: PerfDBResource,
    dagster_instance: dg.DagsterInstance,
) -> None:
    job = create_job(stored, ALARM_CALC, data.PARAMETERS, description="irregular", queue=True)

    (request,) = tick(perfdb_resource).run_requests
    result = defs.get_job_def("perfdb_job").execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=dagster_instance,
        resources=perfdb_job_resources(perfdb_url),
        raise_on_error=False,
    )

    assert result.success
    assert stored.queue.get_job(job.id).state == JobState.FINISHED
    assert data.occurrences(stored) == data.EXPECTED_OCCURRENCES
    for step in stored.queue.get_steps(job.id):
        assert step.alarm_id is not None
        shown = step_metadata(result, f"run_step[{mapping_key(step)}]")
        assert shown == expected_metadata(step.alarm_id), step.alarm_id
        gap_duration = step_output_metadata(result, f"run_step[{mapping_key(step)}]")[
            "gap_duration"
        ].value
        assert gap_duration == format_duration(timedelta(seconds=shown["gap_seconds"]))
        assert step.details is not None
        assert {name: step.details[name] for name in SHOWN_DETAILS} == shown


@pytest.mark.slow
def test_job_run_writes_the_occurrences_of_the_rule(
    stored: PerfDB, perfdb_url: str, tmp_path: Path
) -> None:
    env = dagster_environment(make_dagster_home(tmp_path / "dagster_home"), perfdb_url)
    job = create_job(stored, ALARM_CALC, data.PARAMETERS, description="irregular", queue=True)

    result = subprocess.run(
        [str(INTERPRETER_BIN / "jobs-pipeline"), "--db", perfdb_url, "job", "run", str(job.id)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert stored.queue.get_job(job.id).state == JobState.FINISHED
    assert data.occurrences(stored) == data.EXPECTED_OCCURRENCES
    for step in stored.queue.get_steps(job.id):
        assert step.alarm_id is not None
        assert step.details is not None
        reported = {name: step.details[name] for name in SHOWN_DETAILS}
        assert reported == expected_metadata(step.alarm_id)
