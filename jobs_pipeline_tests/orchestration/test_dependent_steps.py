"""Dependent steps in Dagster runs (a Feature Calculation job of chained derived features), on
SQLite and PostgreSQL: a failure that takes its dependents with it and no other step,
re-execution from failure running exactly the failed chain, and, under the multiprocess and
Celery profiles, dependents starting after their dependency while independent steps overlap."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import MAX_CONCURRENT_STEPS, PERFDB_URL
from jobs_pipeline_tests.orchestration.celery_deployment import CeleryDeployment
from jobs_pipeline_tests.orchestration.feature_job_runs import (
    feature_job,
    in_process_job,
    multiprocess_job,
    run,
    steps_by_key,
)
from jobs_pipeline_tests.orchestration.op_keys import SUMMARY_OP, op_key, started_step_keys
from jobs_pipeline_tests.orchestration.time_intervals import Interval, most_at_once
from jobs_pipeline_tests.power_chain import seed_power_chain


@pytest.mark.usefixtures("perfdb_resource")
def test_a_failure_fails_its_dependents_only_and_from_failure_reruns_that_chain(
    perfdb: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PERFDB_URL.name, perfdb_url)
    period = seed_power_chain(perfdb, ["A", "B", "C"], 30, without_data="C")
    job_id = feature_job(perfdb, ["A", "B", "C"], period)
    parent = run(in_process_job(), job_id, perfdb_url, dagster_instance)
    assert not parent.success

    steps = steps_by_key(perfdb, job_id)
    failed, dependent = steps[("C", "power")], steps[("C", "doubled")]
    assert dependent.depends_on == (failed.id,)
    assert (dependent.state, dependent.attempts, dependent.started) == (JobState.FAILED, 0, None)
    assert dependent.comment == f"not run: depends on step {failed.id} (C power), which failed"
    assert failed.state == JobState.FAILED and failed.comment.startswith("no data for 'power'")
    # Every other step ran and finished; both failed ops are red, the summary was skipped.
    finished = [step for step in steps.values() if step.state == JobState.FINISHED]
    assert len(finished) == 4
    failures = {
        event.step_key: event.event_specific_data.error.message
        for event in parent.all_events
        if event.event_type_value == "STEP_FAILURE"
    }
    assert set(failures) == {op_key(failed), op_key(dependent)}
    assert "not run: depends on step" in failures[op_key(dependent)]
    # Each "doubled" step started once its "power" step had finished.
    for name in ("A", "B"):
        assert steps[(name, "doubled")].started >= steps[(name, "power")].finished
    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.comment) == (JobState.FAILED, "2 (33.33%) steps failed")

    perfdb.values.import_frame(
        pd.DataFrame(
            {
                "object": "C",
                "feature": ["voltage", "current"],
                "timestamp": [datetime(2024, 1, 1, tzinfo=UTC)] * 2,
                "value": [2.0, 3.0],
            }
        )
    )
    child = run(
        in_process_job(),
        job_id,
        perfdb_url,
        dagster_instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(parent.run_id, dagster_instance),
    )
    assert child.success
    assert started_step_keys(child) == sorted([op_key(failed), op_key(dependent), SUMMARY_OP])
    after = steps_by_key(perfdb, job_id)
    assert [after[key].attempts for key in (("C", "power"), ("C", "doubled"))] == [2, 1]
    assert all(after[key] == steps[key] for key in steps if key[0] != "C")
    assert perfdb.queue.get_job(job_id).state == JobState.FINISHED
    object_id = perfdb.catalog.object_ids(["C"])["C"]
    doubled = perfdb.catalog.get_feature("doubled").id
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    assert perfdb.values.read(object_id, doubled, start, end).tolist() == [12.0]


@pytest.mark.slow
@pytest.mark.usefixtures("perfdb_resource")
def test_multiprocess_runs_dependents_after_their_dependency_and_independent_steps_at_once(
    perfdb: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PERFDB_URL.name, perfdb_url)
    monkeypatch.setenv(MAX_CONCURRENT_STEPS.name, "2")
    # About a second of reading, computing and writing per step.
    period = seed_power_chain(perfdb, ["A", "B"], 60_000)
    job_id = feature_job(perfdb, ["A", "B"], period)
    result = run(multiprocess_job(), job_id, perfdb_url, dagster_instance)
    assert result.success
    steps = steps_by_key(perfdb, job_id)
    assert all(step.state == JobState.FINISHED for step in steps.values())
    for name in ("A", "B"):
        power, doubled = steps[(name, "power")], steps[(name, "doubled")]
        assert power.finished is not None and doubled.started is not None
        assert doubled.started >= power.finished
    # The two independent "power" steps ran at the same time, in two step processes (their ops'
    # lives: on SQLite one step's start may wait for the other's write, by design).
    intervals = [
        op_interval(dagster_instance, result.run_id, op_key(steps[(name, "power")]), job_id)
        for name in ("A", "B")
    ]
    assert most_at_once(intervals) == 2


def op_interval(instance: dg.DagsterInstance, run_id: str, key: str, job_id: int) -> Interval:
    """From an op's STEP_START to its STEP_SUCCESS, as the run's event log recorded them."""
    times = {
        entry.dagster_event.event_type_value: entry.timestamp
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None and entry.step_key == key
    }
    started, finished = times["STEP_START"], times["STEP_SUCCESS"]
    return Interval(
        job_id, datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(finished, UTC)
    )


@pytest.mark.slow
def test_celery_runs_dependents_after_their_dependency_and_independent_steps_at_once(
    deployment: CeleryDeployment,
) -> None:
    # The deployment is on PostgreSQL only: Celery workers share the database over the network.
    deployment.start_worker("alpha")
    deployment.start_worker("beta")
    perfdb = deployment.perfdb
    # Seconds of reading, computing and writing per step: longer than a Celery task's start.
    objects = ["A", "B", "C"]
    period = seed_power_chain(perfdb, objects, 200_000)
    job_id = feature_job(perfdb, objects, period)
    job = deployment.wait_until_final(job_id)
    assert job.state == JobState.FINISHED, job.comment
    run = deployment.instance.get_run_by_id(job.run_id)
    assert run is not None and run.job_name == "perfdb_job_celery"
    steps = steps_by_key(perfdb, job_id)
    timeline = sorted((step.started, step.finished, key) for key, step in steps.items())
    for name in objects:
        assert steps[(name, "doubled")].started >= steps[(name, "power")].finished, timeline
    # Independent steps ran at the same time, on the two workers.
    intervals = [Interval(job_id, step.started, step.finished) for step in steps.values()]
    assert most_at_once(intervals) == 2, timeline
