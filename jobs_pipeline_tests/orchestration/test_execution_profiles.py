"""Execution profiles: which Dagster job (and executor) a queued job's run gets, and the pool
that caps the steps using the performance database across runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import JobAlarmCalc
from jobs_pipeline.orchestration.execution import (
    PROFILE_TAG,
    Profile,
    profile_for,
)
from jobs_pipeline.orchestration.ops import PERFDB_POOL
from jobs_pipeline.orchestration.sensors import run_request
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import (
    EXECUTION,
    EXECUTION_PROFILES,
    HEARTBEAT_SECONDS,
    HEARTBEAT_SILENCE_SECONDS,
    HEAVY_EXECUTION,
    MAX_CONCURRENT_STEPS,
    SettingError,
)
from jobs_pipeline_tests.orchestration.alarm_fleet import alarm_job
from jobs_pipeline_tests.orchestration.processes import (
    INTERPRETER_BIN,
    SLOW_STEPS_SPEC,
    SlowStepsJob,
    add_slow_steps_type,
    daemon_deployment,
    finished_run,
    job_in_state,
    scratch_dagster_environment,
    wait_for,
)
from jobs_pipeline_tests.orchestration.time_intervals import Interval, most_at_once

# --- settings ------------------------------------------------------------------------------------


def test_every_job_runs_in_process_unless_the_deployment_says_otherwise() -> None:
    assert profile_for(heavy_steps=False, environ={}) is Profile.IN_PROCESS
    assert profile_for(heavy_steps=True, environ={}) is Profile.IN_PROCESS
    assert profile_for(False, {EXECUTION.name: "multiprocess"}) is Profile.MULTIPROCESS
    # The heavy profile applies to heavy job types only, and defaults to the general one.
    settings = {EXECUTION.name: "in_process", HEAVY_EXECUTION.name: "Celery"}
    assert profile_for(False, settings) is Profile.IN_PROCESS
    assert profile_for(True, settings) is Profile.CELERY
    assert profile_for(True, {EXECUTION.name: "multiprocess"}) is Profile.MULTIPROCESS


def test_an_unknown_profile_is_named_with_the_setting_and_the_choices() -> None:
    with pytest.raises(SettingError) as error:
        profile_for(True, {HEAVY_EXECUTION.name: "threads"})
    assert str(error.value) == (
        "JOBS_PIPELINE_HEAVY_EXECUTION must be `in_process`, `multiprocess` or `celery`, "
        "got 'threads'"
    )


def test_the_settings_know_every_profile() -> None:
    assert EXECUTION_PROFILES.options == tuple(profile.value for profile in Profile)


@pytest.mark.parametrize("text", ["0", "-2", "four"])
def test_max_concurrent_steps_must_be_a_positive_whole_number(text: str) -> None:
    assert MAX_CONCURRENT_STEPS.read({}) == (os.cpu_count() or 1)
    assert MAX_CONCURRENT_STEPS.read({MAX_CONCURRENT_STEPS.name: "3"}) == 3
    with pytest.raises(SettingError, match=f"{MAX_CONCURRENT_STEPS.name} must be a whole number"):
        MAX_CONCURRENT_STEPS.read({MAX_CONCURRENT_STEPS.name: text})


def test_each_profile_is_a_job_of_the_code_location_with_its_executor() -> None:
    executors = {
        profile: defs.get_job_def(profile.job_name).executor_def.name for profile in Profile
    }
    assert executors == {
        Profile.IN_PROCESS: "in_process",
        Profile.MULTIPROCESS: "multiprocess_executor",
        Profile.CELERY: "celery_executor",
    }
    for profile in Profile:
        job_def = defs.get_job_def(profile.job_name)
        assert job_def.tags[PROFILE_TAG] == profile.value
        assert job_def.graph.node_named("run_step").definition.pool == PERFDB_POOL


def test_the_sensor_sends_heavy_job_types_to_the_heavy_profile(
    seeded_db: PerfDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = alarm_job(seeded_db)
    monkeypatch.setenv(HEAVY_EXECUTION.name, "multiprocess")
    monkeypatch.delenv(EXECUTION.name, raising=False)

    light = run_request(job)
    monkeypatch.setattr(JobAlarmCalc, "_heavy_steps", True)
    heavy = run_request(job)

    assert (light.job_name, light.tags[PROFILE_TAG]) == ("perfdb_job", "in_process")
    assert (heavy.job_name, heavy.tags[PROFILE_TAG]) == ("perfdb_job_multiprocess", "multiprocess")
    assert dg.validate_run_config(defs.get_job_def(heavy.job_name), heavy.run_config)


# --- real runs: multiprocess steps in the pool ---------------------------------------------------

OBJECT = "WTG-POOL"
# One job's step holds the pool's only slot for 8 s, so the other job's run waits that long for
# a slot between two of its ops, longer than the silence after which the reconciler takes a run
# for dead: its run worker's heartbeat is what keeps it alive.
STEP_SECONDS = ([8.0], [1.0, 1.0, 1.0])
POOL_LIMIT = 1
SILENCE_SECONDS = 5


@pytest.fixture
def pooled_daemon(
    pg_perfdb_url: str, tmp_path: Path
) -> Iterator[tuple[PerfDB, dg.DagsterInstance]]:
    """A daemon whose deployment sends heavy job types to the multiprocess profile (two step
    processes per run), with the pool `perfdb` limited to one step at a time, and a reconciler
    that declares a run dead after `SILENCE_SECONDS` without a heartbeat."""
    perfdb = PerfDB.connect(pg_perfdb_url)
    try:
        add_slow_steps_type(perfdb, OBJECT)
        settings = {
            HEAVY_EXECUTION.name: "multiprocess",
            MAX_CONCURRENT_STEPS.name: "2",
            HEARTBEAT_SECONDS.name: "0.5",
            HEARTBEAT_SILENCE_SECONDS.name: str(SILENCE_SECONDS),
        }
        with scratch_dagster_environment(pg_perfdb_url, tmp_path, settings) as env:
            # The command docs/deployment.md gives for changing a pool's limit.
            dagster = INTERPRETER_BIN / "dagster"
            subprocess.run(
                [str(dagster), "instance", "concurrency", "set", PERFDB_POOL, "1"],
                env=env,
                check=True,
                capture_output=True,
            )
            with daemon_deployment(env, tmp_path) as running:
                assert (
                    running.instance.event_log_storage.get_concurrency_info(PERFDB_POOL).slot_count
                    == POOL_LIMIT
                )
                yield perfdb, running.instance
    finally:
        perfdb.dispose()


@pytest.mark.slow
def test_two_multiprocess_runs_never_exceed_the_pool_limit(
    pooled_daemon: tuple[PerfDB, dg.DagsterInstance], tmp_path: Path
) -> None:
    perfdb, instance = pooled_daemon
    assert SlowStepsJob._heavy_steps
    jobs = [
        perfdb.queue.create_job(
            SLOW_STEPS_SPEC.name,
            {"object": OBJECT, "seconds": seconds, "pid_file": str(tmp_path / f"{n}.pid")},
            description="pool",
            queue=True,
        )
        for n, seconds in enumerate(STEP_SECONDS)
    ]
    for job in jobs:
        wait_for(
            job_in_state(perfdb, job.id, JobState.FINISHED, JobState.FAILED),
            timeout=240,
            what=f"job {job.id} to end",
        )
    # The job is final before its last step's events and its summary are stored.
    run_ids = [perfdb.queue.get_job(job.id).run_id or "" for job in jobs]
    for run_id in run_ids:
        wait_for(finished_run(instance, run_id), timeout=60, what=f"run {run_id} to end")

    intervals: list[Interval] = []
    step_pids: set[int] = set()
    for job, run_id in zip(jobs, run_ids, strict=True):
        finished = perfdb.queue.get_job(job.id)
        assert finished.state == JobState.FINISHED, finished.comment
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.job_name == "perfdb_job_multiprocess"
        assert run.tags[PROFILE_TAG] == "multiprocess"
        for step in perfdb.queue.get_steps(job.id):
            assert step.started is not None and step.finished is not None
            intervals.append(Interval(job.id, step.started, step.finished))
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_OUTPUT
        ).records:
            data = record.event_log_entry.dagster_event.event_specific_data  # type: ignore[union-attr]
            metadata = getattr(data, "metadata", {}) or {}
            if "worker_pid" in metadata:
                step_pids.add(int(metadata["worker_pid"].value))
    # Both runs were in flight together, yet one step ran at a time: the pool's limit; and the
    # run that waited for its slots was not taken for dead.
    assert len(intervals) == sum(map(len, STEP_SECONDS))
    assert most_at_once(intervals) == POOL_LIMIT
    assert _runs_overlapped(instance, run_ids)
    # A process per step, none of them this test's.
    assert len(step_pids) == len(intervals) and os.getpid() not in step_pids


def _runs_overlapped(instance: dg.DagsterInstance, run_ids: list[str]) -> bool:
    spans = []
    for run_id in run_ids:
        record = instance.get_run_record_by_id(run_id)
        assert record is not None and record.start_time and record.end_time
        spans.append((record.start_time, record.end_time))
    (start_a, end_a), (start_b, end_b) = spans
    return start_a < end_b and start_b < end_a
