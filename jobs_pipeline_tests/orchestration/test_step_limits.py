"""Alive is not enough, under a real `dagster-daemon`: a step that hangs past its job type's
maximum runtime is failed `timed out after ...` and its run terminated, though the run's
heartbeat never stopped.

The code location is the production one plus the test job types of `processes.py`;
`HungStepsJob` allows its steps 4 s, and its middle step sleeps for ten minutes.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.processes import (
    HUNG_STEPS_SPEC,
    HungStepsJob,
    daemon_deployment,
    finished_run,
    job_in_state,
    scratch_dagster_environment,
    wait_for,
)

pytestmark = pytest.mark.slow

OBJECT = "WT-01"
TIMEOUT = 120.0


def test_a_step_that_hangs_past_its_maximum_runtime_fails_and_its_run_is_terminated(
    pg_perfdb_url: str, tmp_path: Path
) -> None:
    perfdb = PerfDB.connect(pg_perfdb_url)
    try:
        perfdb.queue.upsert_job_types([HUNG_STEPS_SPEC])
        perfdb.catalog.ensure_objects([OBJECT])
        with (
            scratch_dagster_environment(pg_perfdb_url, tmp_path) as env,
            daemon_deployment(env, tmp_path) as deployment,
        ):
            job = perfdb.queue.create_job(
                HUNG_STEPS_SPEC.name,
                {"object": OBJECT, "seconds": [0, 600, 0], "pid_file": str(tmp_path / "pid")},
                description="nightly recalculation",
                queue=True,
            )
            job = wait_for(
                job_in_state(perfdb, job.id, JobState.FINISHED, JobState.FAILED),
                timeout=TIMEOUT,
                what=f"job {job.id} to end",
                daemon=deployment.daemon,
            )
            run = wait_for(
                finished_run(deployment.instance, job.run_id),
                timeout=TIMEOUT,
                what=f"run {job.run_id} to end",
                daemon=deployment.daemon,
            )
        steps = perfdb.queue.get_steps(job.id)
    finally:
        perfdb.dispose()

    assert run.status == dg.DagsterRunStatus.CANCELED
    assert [step.state for step in steps] == [JobState.FINISHED, JobState.FAILED, JobState.CREATED]
    hung = steps[1]
    limit = HungStepsJob.MAX_STEP_SECONDS
    assert hung.comment == f"timed out after {limit:g} s"
    assert hung.started is not None and hung.finished is not None
    ran_for = (hung.finished - hung.started).total_seconds()
    assert limit < ran_for < limit + 30  # the reconciler sweeps every 3 s
    assert job.state == JobState.FAILED
    assert job.comment == (
        f"step {hung.id} timed out after {limit:g} s: run {run.run_id} terminated; "
        f"1 (33.33%) steps failed, 1 not run"
    )
