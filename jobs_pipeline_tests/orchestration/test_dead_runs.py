"""Runs that die mid-way, under a real `dagster-daemon`: one terminated (Dagster marks it
CANCELED) and one whose run worker is killed with SIGKILL (FAILURE). The reconciler must
leave nothing Running: the step the run was executing ends Failed with a comment naming the run
and what happened, and the job is finalised Failed. A late or repeated reconciliation of the dead
run changes nothing, even once a newer run has taken the job over.

Dagster keeps its storage in a scratch PostgreSQL database; the performance database is a fresh
PostgreSQL one. The code location is the production one plus `SlowStepsJob`, whose middle step
sleeps far longer than the test lasts.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from jobs_pipeline.orchestration.ops import PERFDB_POOL
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.processes import (
    SLOW_STEPS_SPEC,
    Daemon,
    add_slow_steps_type,
    daemon_deployment,
    finished_run,
    job_in_state,
    scratch_dagster_environment,
    wait_for,
)

pytestmark = pytest.mark.slow

OBJECT = "WT-01"
# The middle step outlasts the test: the run can only end by dying.
STEP_SECONDS = [0, 300, 0]
SLOW_POSITION = 1
LAUNCH_TIMEOUT = 60.0
RECONCILE_TIMEOUT = 60.0
NEWER_RUN = "a-newer-run"


@dataclass(frozen=True)
class Deployment:
    perfdb: PerfDB
    daemon: Daemon
    instance: dg.DagsterInstance
    pid_file: Path


@pytest.fixture
def deployment(pg_perfdb_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """A daemon serving the slow code location; every process it started is stopped after."""
    perfdb = PerfDB.connect(pg_perfdb_url)
    try:
        add_slow_steps_type(perfdb, OBJECT)
        with (
            scratch_dagster_environment(pg_perfdb_url, tmp_path) as env,
            daemon_deployment(env, tmp_path) as running,
        ):
            yield Deployment(
                perfdb=perfdb,
                daemon=running.daemon,
                instance=running.instance,
                pid_file=tmp_path / "pid",
            )
    finally:
        perfdb.dispose()


def run_until_slow_step(deployment: Deployment) -> tuple[int, str]:
    """Queues a slow job and waits until the daemon's run is inside its slow step."""
    perfdb = deployment.perfdb
    job = perfdb.queue.create_job(
        SLOW_STEPS_SPEC.name,
        {"object": OBJECT, "seconds": STEP_SECONDS, "pid_file": str(deployment.pid_file)},
        description="nightly recalculation",
        queue=True,
    )

    def slow_step_running() -> Any:
        steps = perfdb.queue.get_steps(job.id)
        return len(steps) == len(STEP_SECONDS) and steps[SLOW_POSITION].state == JobState.RUNNING

    wait_for(
        slow_step_running,
        timeout=LAUNCH_TIMEOUT,
        what=f"the slow step of job {job.id} to be Running",
        daemon=deployment.daemon,
    )
    run_id = perfdb.queue.get_job(job.id).run_id
    assert run_id
    assert deployment.instance.get_run_by_id(run_id) is not None
    return job.id, run_id


def wait_until_reconciled(deployment: Deployment, job_id: int, run_id: str) -> dg.DagsterRun:
    run = wait_for(
        finished_run(deployment.instance, run_id),
        timeout=RECONCILE_TIMEOUT,
        what=f"run {run_id} to end",
        daemon=deployment.daemon,
    )
    wait_for(
        job_in_state(deployment.perfdb, job_id, JobState.FAILED, JobState.FINISHED),
        timeout=RECONCILE_TIMEOUT,
        what=f"the reconciler to finalise job {job_id}",
        daemon=deployment.daemon,
    )
    return run


def assert_dead_run_reconciled(perfdb: PerfDB, job_id: int, run_id: str, reason: str) -> None:
    """The slow step is Failed with `reason`, the step before it Finished, the one after it never
    started, and the job is Failed with `reason`, the share of failed steps and those not run."""
    job = perfdb.queue.get_job(job_id)
    steps = perfdb.queue.get_steps(job_id)

    assert [step.state for step in steps] == [JobState.FINISHED, JobState.FAILED, JobState.CREATED]
    slow = steps[SLOW_POSITION]
    assert (slow.comment, slow.run_id) == (reason, run_id)
    assert slow.finished is not None
    assert (job.state, job.run_id) == (JobState.FAILED, run_id)
    # The step after the slow one never started: it counts as not run, not as failed.
    assert job.comment == f"{reason}; 1 (33.33%) steps failed, 1 not run"
    assert job.finished is not None
    last = [entry for entry in perfdb.queue.history(job_id) if entry.step_id == slow.id][-1]
    assert (last.from_state, last.to_state, last.comment) == (
        JobState.RUNNING,
        JobState.FAILED,
        reason,
    )
    assert last.actor.startswith("reconciler:")


def snapshot(perfdb: PerfDB, job_id: int) -> tuple[Any, ...]:
    queue = perfdb.queue
    return queue.get_job(job_id), queue.get_steps(job_id), queue.history(job_id)


def assert_late_reconciliation_changes_nothing(perfdb: PerfDB, job_id: int, run_id: str) -> None:
    """Reconciling the dead run again is a no-op, also after a newer run has taken over."""
    queue = perfdb.queue
    before = snapshot(perfdb, job_id)
    assert queue.fail_running_steps_of_run(run_id, f"run {run_id} failed again") == []
    assert snapshot(perfdb, job_id) == before

    # A re-execution from the UI reopens the job and re-runs the failed step.
    slow_step_id = queue.get_steps(job_id)[SLOW_POSITION].id
    queue.reopen_job(job_id, NEWER_RUN)
    queue.start_step(slow_step_id, NEWER_RUN)
    taken_over = snapshot(perfdb, job_id)
    assert queue.fail_running_steps_of_run(run_id, f"run {run_id} failed late") == []
    assert snapshot(perfdb, job_id) == taken_over
    job, steps, _ = taken_over
    assert (job.state, job.run_id) == (JobState.RUNNING, NEWER_RUN)
    assert (steps[SLOW_POSITION].state, steps[SLOW_POSITION].run_id) == (
        JobState.RUNNING,
        NEWER_RUN,
    )


def test_terminated_run_leaves_its_steps_failed_not_running(deployment: Deployment) -> None:
    job_id, run_id = run_until_slow_step(deployment)

    assert deployment.instance.run_launcher.terminate(run_id)
    run = wait_until_reconciled(deployment, job_id, run_id)

    assert run.status == dg.DagsterRunStatus.CANCELED
    assert_dead_run_reconciled(deployment.perfdb, job_id, run_id, f"run {run_id} was canceled")
    assert_late_reconciliation_changes_nothing(deployment.perfdb, job_id, run_id)


def test_killed_run_worker_leaves_its_steps_failed_not_running(deployment: Deployment) -> None:
    job_id, run_id = run_until_slow_step(deployment)
    worker = int(deployment.pid_file.read_text())
    # Only ever kill a process of the daemon's group (the run worker, not this test).
    assert worker != os.getpid()
    assert os.getpgid(worker) == deployment.daemon.process.pid

    assert pool_slots_of(deployment.instance, run_id), "the slow step holds no pool slot"

    os.kill(worker, signal.SIGKILL)
    run = wait_until_reconciled(deployment, job_id, run_id)

    assert run.status == dg.DagsterRunStatus.FAILURE
    comment = deployment.perfdb.queue.get_steps(job_id)[SLOW_POSITION].comment or ""
    # The reconciler adds Dagster's own account of the failure after the run id.
    assert comment.startswith(f"run {run_id} failed: ")
    assert_dead_run_reconciled(deployment.perfdb, job_id, run_id, comment)
    assert_late_reconciliation_changes_nothing(deployment.perfdb, job_id, run_id)
    # The killed worker never gave back its slot: the daemon does, or a few such deaths would
    # leave every later step waiting for one.
    wait_for(
        lambda: not pool_slots_of(deployment.instance, run_id),
        timeout=RECONCILE_TIMEOUT,
        what=f"the pool slot of dead run {run_id} to be freed",
        daemon=deployment.daemon,
    )


def pool_slots_of(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The steps of `run_id` that hold a slot of the `perfdb` pool."""
    info = instance.event_log_storage.get_concurrency_info(PERFDB_POOL)
    return [slot.step_key for slot in info.claimed_slots if slot.run_id == run_id]
