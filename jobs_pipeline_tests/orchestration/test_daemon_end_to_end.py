"""The production code location end to end, in real processes.

- `dagster-daemon run -w workspace.yaml` with the repository's `dagster.yaml` on a scratch
  PostgreSQL database: a job created and queued with the `jobs-pipeline` command is launched by
  the queue sensor and finishes with the expected occurrences; requeued, it runs again under a
  new run key. The code server forks its run workers from a forkserver.
- `jobs-pipeline job run ID` without a daemon (SQLite for both databases): exit 0 and the run's
  id on stdout, and off a terminal only the command's own lines (no INFO lines of Dagster's
  processes unless `JOBS_PIPELINE_LOG_LEVEL=info`); exit 2 for a job that is not Queued.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from jobs_pipeline.jobs import create_job
from jobs_pipeline.orchestration.sensors import JOB_ID_TAG, JOB_TYPE_TAG, QUEUE_COUNT_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import FINAL_STATES, JobState
from jobs_pipeline.settings import LOG_LEVEL
from jobs_pipeline_tests.orchestration.processes import (
    INTERPRETER_BIN,
    PRODUCTION_WORKSPACE,
    REPO_ROOT,
    SLOW_STEPS_SPEC,
    DaemonDeployment,
    add_slow_steps_type,
    daemon_deployment,
    dagster_environment,
    finished_run,
    instance_for_environment,
    job_in_state,
    make_dagster_home,
    scratch_dagster_environment,
    wait_for,
)

pytestmark = pytest.mark.slow

ALARM_CALC = "Alarm Calculation"
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
JOB_TIMEOUT = 90.0
COMMAND_TIMEOUT = 180.0

NAN = math.nan
T0 = datetime(2024, 3, 1, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)
HIGH = 7001  # temperature > 80
HYSTERESIS = 7002  # temperature > 80, clears at <= 75, lasts at least 20 minutes
# Twelve samples from T0 per turbine; the samples just outside the period would trip both alarms.
TEMPERATURE: dict[str, list[float]] = {
    "WT-01": [70, 81, 85, 79, 70, 90, 91, NAN, 92, 70, 70, 95],
    "WT-02": [70, 70, 70, 70, 88, 70, 70, 70, 70, 70, 70, 70],
}
PARAMETERS = {
    "object_names": ["WT-01", "WT-02"],
    "alarm_ids": [HIGH, HYSTERESIS],
    "start": "2024-03-01 00:00:00",
    "end": "2024-03-01 02:00:00",
}
# (object, alarm, start minute, end minute, peak), worked out by hand from the samples above and
# the violating ones just before and after the period.
EXPECTED_OCCURRENCES = [
    ("WT-01", HIGH, 10, 30, 85.0),
    ("WT-01", HIGH, 50, 70, 91.0),  # ends at the NaN
    ("WT-01", HIGH, 80, 90, 92.0),
    ("WT-01", HIGH, 110, 130, 99.0),  # goes on past the period end (open)
    ("WT-01", HYSTERESIS, 10, 40, 85.0),  # 79 keeps it active
    ("WT-01", HYSTERESIS, 50, 70, 91.0),
    ("WT-01", HYSTERESIS, 110, 130, 99.0),
    ("WT-02", HIGH, 40, 50, 88.0),  # too short for the hysteresis alarm
]


def store_samples(perfdb: PerfDB) -> None:
    rows: list[dict[str, Any]] = [
        {"object": obj, "feature": "temperature", "timestamp": T0 + i * TEN_MINUTES, "value": value}
        for obj, values in TEMPERATURE.items()
        for i, value in enumerate([99, *values, 99], start=-1)
    ]
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    perfdb.values.import_frame(frame)
    perfdb.catalog.define_alarm(
        alarm_id=HIGH, name="Temperature high", feature="temperature", operator=">", threshold=80
    )
    perfdb.catalog.define_alarm(
        alarm_id=HYSTERESIS,
        name="Temperature high (hysteresis)",
        feature="temperature",
        operator=">",
        threshold=80,
        clear_threshold=75,
        min_duration=timedelta(minutes=20),
    )


def occurrences(perfdb: PerfDB) -> list[tuple[str, int, int, int, float | None]]:
    return [
        (
            found.object_name,
            found.alarm_id,
            round((found.start - T0) / timedelta(minutes=1)),
            round((found.end - T0) / timedelta(minutes=1)),
            found.peak_value,
        )
        for found in perfdb.occurrences.list()
    ]


def jobs_pipeline(
    *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [str(INTERPRETER_BIN / "jobs-pipeline"), *args],
        env=None if env is None else dict(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def forkserver_in_group(pgid: int) -> bool:
    """Whether a multiprocessing forkserver runs in this process group (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if group == pgid and b"multiprocessing.forkserver" in command:
            return True
    return False


def runs_of_job(instance: dg.DagsterInstance, job_id: int) -> list[dg.DagsterRun]:
    """Oldest first."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={JOB_ID_TAG: str(job_id)}))
    return list(reversed(runs))


def assert_tagged(run: dg.DagsterRun, job_id: int, queue_count: int) -> None:
    assert run.job_name == "perfdb_job"
    assert run.tags[JOB_ID_TAG] == str(job_id)
    assert run.tags[JOB_TYPE_TAG] == ALARM_CALC
    assert run.tags[QUEUE_COUNT_TAG] == str(queue_count)


# --- the daemon ----------------------------------------------------------------------------


def successful_run_of(
    running: DaemonDeployment, job_id: int, run_id: str | None, *, queue_count: int
) -> dg.DagsterRun:
    """The run `run_id` once it has ended, checked to have succeeded as the sensor's run of the
    job's `queue_count`-th queueing."""
    run = wait_for(
        finished_run(running.instance, run_id or ""),
        timeout=JOB_TIMEOUT,
        what=f"run {run_id} to end",
        daemon=running.daemon,
    )
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert_tagged(run, job_id, queue_count=queue_count)
    assert run.tags[RUN_KEY_TAG] == f"job-{job_id}-{queue_count}"
    return run


def test_daemon_runs_a_job_queued_with_the_cli_and_runs_it_again_when_requeued(
    pg_perfdb_url: str, tmp_path: Path
) -> None:
    perfdb = PerfDB.connect(pg_perfdb_url)
    try:
        store_samples(perfdb)
        with (
            scratch_dagster_environment(pg_perfdb_url, tmp_path) as env,
            daemon_deployment(env, tmp_path, PRODUCTION_WORKSPACE) as running,
        ):
            daemon, instance = running.daemon, running.instance
            created = jobs_pipeline(
                "--db",
                pg_perfdb_url,
                "job",
                "create",
                "--type",
                ALARM_CALC,
                "--params",
                json.dumps(PARAMETERS),
                "--description",
                "March recalculation",
                "--queue",
            )
            assert created.returncode == 0, created.stderr
            job_id = int(created.stdout)

            job = wait_for(
                job_in_state(perfdb, job_id, JobState.FINISHED, JobState.FAILED),
                timeout=JOB_TIMEOUT,
                what=f"job {job_id} to end",
                daemon=daemon,
            )
            assert job.state == JobState.FINISHED, job.comment
            assert occurrences(perfdb) == EXPECTED_OCCURRENCES
            steps = perfdb.queue.get_steps(job_id)
            assert [step.state for step in steps] == [JobState.FINISHED] * 4
            assert {step.run_id for step in steps} == {job.run_id}
            # Wait for the run itself, too: stopping the daemon interrupts runs in flight.
            first = successful_run_of(running, job_id, job.run_id, queue_count=1)
            assert first.tags[SENSOR_NAME_TAG] == "perfdb_queue_sensor"
            # The code server forked the run's worker from its forkserver (run_workers.py).
            assert forkserver_in_group(daemon.process.pid)

            requeued = jobs_pipeline("--db", pg_perfdb_url, "job", "queue", str(job_id))
            assert requeued.returncode == 0, requeued.stderr

            def ended_again() -> Any:
                job = perfdb.queue.get_job(job_id)
                return job if job.queue_count == 2 and job.state in FINAL_STATES else None

            again = wait_for(
                ended_again,
                timeout=JOB_TIMEOUT,
                what=f"job {job_id} to end a second time",
                daemon=daemon,
            )
            assert again.state == JobState.FINISHED, again.comment
            assert again.run_id != first.run_id
            assert occurrences(perfdb) == EXPECTED_OCCURRENCES
            second = successful_run_of(running, job_id, again.run_id, queue_count=2)
            assert [run.run_id for run in runs_of_job(instance, job_id)] == [
                first.run_id,
                second.run_id,
            ]
    finally:
        perfdb.dispose()


def test_job_run_next_to_the_daemon_waits_for_the_sensors_run_instead_of_launching_another(
    pg_perfdb_url: str, tmp_path: Path
) -> None:
    perfdb = PerfDB.connect(pg_perfdb_url)
    try:
        add_slow_steps_type(perfdb, "WT-01")
        with (
            scratch_dagster_environment(pg_perfdb_url, tmp_path) as env,
            daemon_deployment(env, tmp_path) as running,
        ):
            job = perfdb.queue.create_job(
                SLOW_STEPS_SPEC.name,
                {"object": "WT-01", "seconds": [8], "pid_file": str(tmp_path / "pid")},
                queue=True,
            )
            [sensors_run] = wait_for(
                lambda: runs_of_job(running.instance, job.id),
                timeout=JOB_TIMEOUT,
                what=f"the queue sensor to launch job {job.id}",
                daemon=running.daemon,
            )

            result = jobs_pipeline("--db", pg_perfdb_url, "job", "run", str(job.id), env=env)

            assert result.returncode == 0, result.stderr
            assert f"job {job.id} already has run {sensors_run.run_id}" in result.stderr
            assert result.stdout.startswith(f"job {job.id} Finished: run {sensors_run.run_id} ")
            assert [run.run_id for run in runs_of_job(running.instance, job.id)] == [
                sensors_run.run_id
            ]
            finished = perfdb.queue.get_job(job.id)
            assert (finished.state, finished.run_id) == (JobState.FINISHED, sensors_run.run_id)
    finally:
        perfdb.dispose()


# --- `jobs-pipeline job run` -----------------------------------------------------------------


@pytest.fixture
def sqlite_perfdb_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite performance database."""
    target = tmp_path / "perfdb.sqlite"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def sqlite_env(sqlite_perfdb_url: str, tmp_path: Path) -> dict[str, str]:
    """A Dagster home with the repository's configuration and no `DAGSTER_PG_URL`: SQLite."""
    return dagster_environment(make_dagster_home(tmp_path / "dagster_home"), sqlite_perfdb_url)


def test_job_run_launches_the_queued_job_and_waits_for_it(
    sqlite_perfdb_url: str, sqlite_env: dict[str, str]
) -> None:
    perfdb = PerfDB.connect(sqlite_perfdb_url)
    try:
        store_samples(perfdb)
        job_id = create_job(perfdb, ALARM_CALC, PARAMETERS, queue=True).id

        result = jobs_pipeline("--db", sqlite_perfdb_url, "job", "run", str(job_id), env=sqlite_env)

        assert result.returncode == 0, result.stderr
        job = perfdb.queue.get_job(job_id)
        assert job.state == JobState.FINISHED, job.comment
        assert job.run_id
        # Only the outcome is on stdout; stderr has the command's own lines, not the INFO
        # lines of the code server and the run worker (the output is a pipe, not a terminal).
        (line,) = result.stdout.splitlines()
        assert line.startswith(f"job {job_id} Finished: run {job.run_id} success in ")
        assert_only_own_lines(result.stderr, job_id)
        assert occurrences(perfdb) == EXPECTED_OCCURRENCES
        with instance_for_environment(sqlite_env) as instance:
            (run,) = runs_of_job(instance, job_id)
            assert run.run_id == job.run_id
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert_tagged(run, job_id, queue_count=1)

        # Finished is not Queued: nothing is launched a second time.
        again = jobs_pipeline("--db", sqlite_perfdb_url, "job", "run", str(job_id), env=sqlite_env)
        assert (again.returncode, again.stdout) == (2, "")
        assert again.stderr == f"jobs-pipeline: error: job {job_id} is Finished, expected Queued\n"
        assert perfdb.queue.get_job(job_id) == job

        # Asked for detail, Dagster's INFO lines are back.
        perfdb.queue.queue_job(job_id)
        detailed = jobs_pipeline(
            "--db",
            sqlite_perfdb_url,
            "job",
            "run",
            str(job_id),
            env={**sqlite_env, LOG_LEVEL.name: "info"},
        )
        assert detailed.returncode == 0, detailed.stderr
        assert "dagster.code_server - " in detailed.stderr
        assert f"job {job_id} (Alarm Calculation): " in detailed.stderr  # the plan op's INFO
    finally:
        perfdb.dispose()


OWN_LINE = re.compile(r"(run \S+ launched for job \d+; |job \d+ |step \d+ )")


def assert_only_own_lines(stderr: str, job_id: int) -> None:
    lines = stderr.splitlines()
    assert lines[0].endswith(
        f"launched for job {job_id}; to cancel it: jobs-pipeline job cancel {job_id}"
    )
    # The final status is stdout's one line, not repeated here.
    assert not any(line.startswith(f"job {job_id} Finished") for line in lines), stderr
    assert [line for line in lines if not OWN_LINE.match(line)] == [], stderr
    assert "\x1b[" not in stderr and "dagster" not in stderr.lower(), stderr


def test_job_run_refuses_a_job_that_is_not_queued(
    sqlite_perfdb_url: str, sqlite_env: dict[str, str]
) -> None:
    perfdb = PerfDB.connect(sqlite_perfdb_url)
    try:
        store_samples(perfdb)
        job = create_job(perfdb, ALARM_CALC, PARAMETERS)

        result = jobs_pipeline("--db", sqlite_perfdb_url, "job", "run", str(job.id), env=sqlite_env)

        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == f"jobs-pipeline: error: job {job.id} is Created, expected Queued\n"
        assert perfdb.queue.get_job(job.id) == job
        assert perfdb.queue.get_steps(job.id) == []
        with instance_for_environment(sqlite_env) as instance:
            assert instance.get_runs() == []
    finally:
        perfdb.dispose()


def test_job_run_of_a_job_held_outside_dagster_is_refused(
    sqlite_perfdb_url: str, sqlite_env: dict[str, str]
) -> None:
    perfdb = PerfDB.connect(sqlite_perfdb_url)
    try:
        store_samples(perfdb)
        job = create_job(perfdb, ALARM_CALC, PARAMETERS, queue=True)
        perfdb.queue.claim_job(job.id, "standalone-1")

        result = jobs_pipeline("--db", sqlite_perfdb_url, "job", "run", str(job.id), env=sqlite_env)

        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr == (
            f"jobs-pipeline: error: job {job.id} is Running (held by standalone-1, not a run "
            f"of this Dagster instance)\n"
        )
    finally:
        perfdb.dispose()


def test_a_job_run_whose_launch_fails_leaves_the_job_queued_and_no_run_behind(
    sqlite_perfdb_url: str, sqlite_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run claims the job itself: a launch that fails (or a Ctrl-C before it) strands
    # nothing, and the queue sensor launches the job later.
    from jobs_pipeline.orchestration.launch import run_queued_job

    for name in ("DAGSTER_HOME", "PYTHONPATH"):
        monkeypatch.setenv(name, sqlite_env[name])
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)

    def broken_launch(self: Any, run_id: str, workspace: Any = None) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(dg.DagsterInstance, "launch_run", broken_launch)
    perfdb = PerfDB.connect(sqlite_perfdb_url)
    try:
        store_samples(perfdb)
        job = create_job(perfdb, ALARM_CALC, PARAMETERS, queue=True)

        with pytest.raises(KeyboardInterrupt):
            run_queued_job(perfdb, job.id)

        assert perfdb.queue.get_job(job.id) == job
        with instance_for_environment(sqlite_env) as instance:
            assert instance.get_runs() == []
    finally:
        perfdb.dispose()
