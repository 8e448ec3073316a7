"""The `celery` execution profile on the real broker (RabbitMQ, `JOBS_PIPELINE_TEST_CELERY_BROKER`,
by default the one on this machine): two workers started with `scripts/celery-worker`, the
daemon and its queue sensor, the Dagster instance and the performance database on PostgreSQL.

Each test has its own Celery queue, so that tests running side by side never take each other's
tasks."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from jobs_pipeline.orchestration.execution import CELERY_SETTINGS, PROFILE_TAG
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import CELERY_BROKER, STEP_PICKUP_SECONDS
from jobs_pipeline_tests.orchestration.alarm_fleet import (
    EXPECTED_OCCURRENCES,
    import_missing_values,
    occurrence_counts,
)
from jobs_pipeline_tests.orchestration.celery_deployment import TIMEOUT, CeleryDeployment
from jobs_pipeline_tests.orchestration.processes import (
    REPO_ROOT,
    finished_run,
    job_in_state,
    running_daemon,
    wait_for,
    write_workspace,
)

pytestmark = pytest.mark.slow

WORKER_CONFIG = REPO_ROOT / "scripts" / "celery.yaml"


def step_workers(instance: dg.DagsterInstance, run_id: str) -> set[tuple[str, int]]:
    """(host, pid) of every step op that reported its outcome in the run."""
    workers = set()
    for event_type in (dg.DagsterEventType.STEP_OUTPUT, dg.DagsterEventType.STEP_FAILURE):
        for record in instance.get_records_for_run(run_id, of_type=event_type).records:
            event = record.event_log_entry.dagster_event
            data = event.event_specific_data if event is not None else None
            metadata = getattr(data, "metadata", None) or {}
            if data is not None and getattr(data, "user_failure_data", None) is not None:
                metadata = data.user_failure_data.metadata or {}
            if "worker_pid" in metadata:
                workers.add((metadata["worker_host"].value, int(metadata["worker_pid"].value)))
    return workers


def celery_worker_names(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    names = set()
    for record in instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
    ).records:
        event = record.event_log_entry.dagster_event
        data = event.event_specific_data if event is not None else None
        worker = (getattr(data, "metadata", None) or {}).get("Celery worker")
        if worker is not None:
            names.add(str(worker.value).split("@")[0])
    return names


def reexecute_from_failure(deployment: CeleryDeployment, parent_run_id: str) -> str:
    """What the UI's "Re-execute from failure" does: a child run of the failed steps, submitted
    to the run queue, which the daemon launches."""
    from dagster._core.execution.plan.resume_retry import ReexecutionStrategy
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    instance = deployment.instance
    parent = instance.get_run_by_id(parent_run_id)
    assert parent is not None and parent.remote_job_origin is not None
    workspace_file = write_workspace(deployment.directory)
    saved = dict(os.environ)
    os.environ.update(deployment.env)  # the code server this starts runs in the deployment's env
    try:
        with WorkspaceProcessContext(
            instance, WorkspaceFileTarget(paths=[str(workspace_file)])
        ) as workspace_process:
            context = workspace_process.create_request_context()
            location = context.get_code_location(parent.remote_job_origin.location_name)
            remote_job = location.get_repository(
                parent.remote_job_origin.repository_origin.repository_name
            ).get_full_job(parent.job_name)
            child = instance.create_reexecuted_run(
                request_context=context,
                parent_run=parent,
                code_location=location,
                remote_job=remote_job,
                strategy=ReexecutionStrategy.FROM_FAILURE,
                use_parent_run_tags=True,
            )
            instance.submit_run(child.run_id, context)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return child.run_id


def test_steps_spread_over_two_workers_and_a_failed_run_is_reexecuted_from_failure(
    deployment: CeleryDeployment,
) -> None:
    deployment.start_worker("alpha")
    deployment.start_worker("beta")
    perfdb, instance = deployment.perfdb, deployment.instance

    job_id = deployment.queue_paced_job()
    job = deployment.wait_until_final(job_id)

    # LAN-03 has no data: its two steps fail, the four others are Finished, on both workers.
    assert (job.state, job.comment) == (JobState.FAILED, "2 (33.33%) steps failed")
    run = instance.get_run_by_id(job.run_id)
    assert run is not None
    assert (run.job_name, run.tags[PROFILE_TAG]) == ("perfdb_job_celery", "celery")
    assert celery_worker_names(instance, job.run_id) == {
        deployment.node_name("alpha"),
        deployment.node_name("beta"),
    }
    workers = step_workers(instance, job.run_id)
    assert len(workers) == 2 and {host for host, _ in workers} == {socket.gethostname()}
    assert os.getpid() not in {pid for _, pid in workers}
    states = [step.state for step in perfdb.queue.get_steps(job_id)]
    assert sorted(state.label for state in states) == ["Failed"] * 2 + ["Finished"] * 4

    import_missing_values(perfdb)
    child_run_id = reexecute_from_failure(deployment, job.run_id)
    wait_for(finished_run(instance, child_run_id), timeout=TIMEOUT, what="the re-execution")

    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.run_id) == (JobState.FINISHED, child_run_id)
    child = instance.get_run_by_id(child_run_id)
    assert child is not None and child.status == dg.DagsterRunStatus.SUCCESS
    assert child.parent_run_id == run.run_id and child.job_name == "perfdb_job_celery"
    assert occurrence_counts(perfdb) == EXPECTED_OCCURRENCES


def test_a_worker_killed_in_the_middle_of_a_step_strands_nothing(
    deployment: CeleryDeployment,
) -> None:
    deployment.start_worker("alpha")
    deployment.start_worker("beta")
    import_missing_values(deployment.perfdb)  # every step succeeds, unless its worker dies
    perfdb = deployment.perfdb
    job_id = deployment.queue_paced_job()
    pid_file = deployment.pid_dir / f"{job_id}.pid"

    def a_step_running() -> int | None:
        running = [s for s in perfdb.queue.get_steps(job_id) if s.state == JobState.RUNNING]
        return int(pid_file.read_text()) if running and pid_file.exists() else None

    step_pid = wait_for(a_step_running, timeout=TIMEOUT, what="a step to run on a worker")
    # The whole worker (its main process and the child running the step), as a crash would.
    os.killpg(os.getpgid(step_pid), signal.SIGKILL)
    killed_at = time.monotonic()

    job = deployment.wait_until_final(job_id)
    if job.state == JobState.FAILED:
        # The step could not be redelivered: the job says why and runs again when requeued.
        assert job.comment
        deployment.start_worker("gamma")
        perfdb.queue.queue_job(job_id)
        job = deployment.wait_until_final(job_id)
    assert job.state == JobState.FINISHED, job.comment
    assert time.monotonic() - killed_at < TIMEOUT
    assert [s.state for s in perfdb.queue.get_steps(job_id)] == [JobState.FINISHED] * 6
    assert occurrence_counts(perfdb) == EXPECTED_OCCURRENCES  # no duplicate, none lost


def test_a_broker_that_does_not_answer_fails_the_run_and_the_job_with_the_reason(
    deployment: CeleryDeployment, tmp_path: Path
) -> None:
    # The deployment's broker address points at a port where nothing listens.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    deployment.daemon.stop()
    deployment.env[CELERY_BROKER.name] = f"pyamqp://guest:guest@127.0.0.1:{dead_port}//"
    with running_daemon(
        write_workspace(tmp_path), deployment.env, tmp_path / "daemon2.log"
    ) as daemon:
        deployment.daemon = daemon
        job_id = deployment.queue_paced_job()
        job = wait_for(
            job_in_state(deployment.perfdb, job_id, JobState.FAILED, JobState.FINISHED),
            timeout=TIMEOUT,
            what=f"job {job_id} to end",
            daemon=daemon,
        )

    assert job.state == JobState.FAILED
    assert job.run_id is None  # the run never got to claim it
    [run] = deployment.instance.get_runs(dg.RunsFilter(tags={"jobs_pipeline/job_id": str(job_id)}))
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert job.comment == (
        f"run {run.run_id} failed before it claimed the job "
        f"(kombu.exceptions.OperationalError: [Errno 111] Connection refused): queue it again"
    )
    assert deployment.perfdb.queue.get_steps(job_id) == []


def test_a_run_whose_steps_no_worker_picks_up_fails_with_the_reason(
    deployment: CeleryDeployment, tmp_path: Path
) -> None:
    # No worker listens to the deployment's queue; the daemon allows 15 s for a pickup.
    deployment.daemon.stop()
    deployment.env[STEP_PICKUP_SECONDS.name] = "15"
    with running_daemon(
        write_workspace(tmp_path), deployment.env, tmp_path / "daemon2.log"
    ) as daemon:
        deployment.daemon = daemon
        job_id = deployment.queue_paced_job()
        job = wait_for(
            job_in_state(deployment.perfdb, job_id, JobState.FAILED, JobState.FINISHED),
            timeout=TIMEOUT,
            what=f"job {job_id} to end",
            daemon=daemon,
        )
        [run] = deployment.instance.get_runs(
            dg.RunsFilter(tags={"jobs_pipeline/job_id": str(job_id)})
        )
        run = wait_for(
            finished_run(deployment.instance, run.run_id),
            timeout=TIMEOUT,
            what=f"run {run.run_id} to end",
            daemon=daemon,
        )

    assert job.state == JobState.FAILED
    assert job.comment == (
        f"no worker picked up run {run.run_id} within 15 s (is a worker listening to its "
        f"queue?): queue it again"
    )
    assert run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE)
    queue = deployment.perfdb.queue
    assert queue.list_jobs(state=JobState.RUNNING) == []
    assert queue.list_jobs(state=JobState.QUEUED) == []


def test_the_worker_configuration_matches_the_executor() -> None:
    config = yaml.safe_load(WORKER_CONFIG.read_text())["execution"]["config"]
    assert config["config_source"] == CELERY_SETTINGS
    assert config["broker"] == {"env": CELERY_BROKER.name}
