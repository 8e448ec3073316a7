"""`jobs-pipeline job run`: launch a queued job's run the way the daemon does, and wait.

The run is created from the code location that `workspace.yaml` names, so it has a remote origin
and the UI can re-execute it like any sensor run. It is launched directly (not through the run
queue), so no daemon is needed.

Next to a running daemon the job gets one run, never two: the run carries the job's run key
(`job-<id>-<queue count>`, the queue sensor's), a job that has a run with that key already (the
sensor was first) is left to it and waited for, and a run created at the same moment as the
sensor's steps aside (it is deleted before it starts) once the sensor's tick is over.

Quiet (`quiet=True`, the command off a terminal): the code server it starts and the run's
console logger print WARNING and above only, so that the output holds the command's own lines;
`JOBS_PIPELINE_LOG_LEVEL=debug` or `info` brings Dagster's INFO lines back.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidTransition, PerfDBError
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import DAGSTER_HOME, LOG_LEVEL, PERFDB_URL, PROJECT_ROOT

WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"


class RunFailed(PerfDBError):
    """The job's run did not finish it."""


@dataclass(frozen=True, kw_only=True)
class RunOutcome:
    job: Job
    run_id: str
    run_status: str
    seconds: float
    # False when the job's run was launched by someone else (the queue sensor) and waited for.
    launched: bool = True

    def __str__(self) -> str:
        comment = f" ({self.job.comment})" if self.job.comment else ""
        return (
            f"job {self.job.id} {self.job.state.label}{comment}: run {self.run_id} "
            f"{self.run_status.lower()} in {self.seconds:.1f} s"
        )


def ensure_dagster_home() -> Path:
    """`DAGSTER_HOME`, defaulting to the project's `.dagster_home` with the repository's
    `dagster.yaml`."""
    home = DAGSTER_HOME.read()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and INSTANCE_CONFIG.exists():
        config.symlink_to(INSTANCE_CONFIG)
    os.environ[DAGSTER_HOME.name] = str(home)
    return home


def run_queued_job(
    perfdb: PerfDB,
    job_id: int,
    *,
    timeout_seconds: float = 3600.0,
    poll_seconds: float = 0.5,
    on_launch: Callable[[str, bool], None] | None = None,
    on_poll: Callable[[], object] | None = None,
    quiet: bool = False,
) -> RunOutcome:
    """Launches the Queued job's run now, unless it has one already (the queue sensor's), and
    waits for that run to end. The run claims the job itself (its plan op), as a
    sensor-launched run does: until then the job stays Queued, so an interrupted launch leaves
    nothing Running. `on_launch(run_id, launched)` is called once the run is known (`launched`
    False: someone else's run, waited for), `on_poll()` every `poll_seconds` while waiting (to
    show progress). `quiet`: Dagster's processes print only their warnings and errors."""
    from dagster import DagsterInstance

    from jobs_pipeline.orchestration.sensors import run_key

    job = perfdb.queue.get_job(job_id)
    if job.state not in (JobState.QUEUED, JobState.RUNNING):
        raise InvalidTransition(f"job {job_id} is {job.state.label}, expected Queued")
    # The run worker reads the same performance database as this command.
    os.environ[PERFDB_URL.name] = perfdb.engine.url.render_as_string(hide_password=False)
    ensure_dagster_home()

    started = time.monotonic()
    with _subprocess_output_to_stderr(), DagsterInstance.get() as instance:
        existing = _runs_with_key(instance, run_key(job))
        if job.state == JobState.RUNNING:
            # Held already: its run is the one to wait for, if this Dagster instance knows it.
            if not job.run_id or instance.get_run_by_id(job.run_id) is None:
                holder = f"held by {job.run_id}" if job.run_id else "held by no run"
                raise InvalidTransition(
                    f"job {job_id} is Running ({holder}, not a run of this Dagster instance)"
                )
            existing = [job.run_id]
        if existing:
            run_id, launched = existing[0], False
        elif job.state != JobState.QUEUED:
            raise InvalidTransition(f"job {job_id} is {job.state.label}, expected Queued")
        else:
            run_id = _launch(perfdb, job, instance, _console_level(quiet))
            launched = run_id in _runs_with_key(instance, run_key(job))[:1]
            if not launched:  # the sensor's run was first: this one stepped aside
                run_id = _runs_with_key(instance, run_key(job))[0]
        if on_launch is not None:
            on_launch(run_id, launched)
        status = _wait(instance, run_id, started + timeout_seconds, poll_seconds, on_poll)
    return RunOutcome(
        job=perfdb.queue.get_job(job_id),
        run_id=run_id,
        run_status=status,
        seconds=time.monotonic() - started,
        launched=launched,
    )


def stop_runs_of_canceled_job(job: Job) -> list[str]:
    """After a Queued job was canceled: its run waiting in Dagster's queue (or started but not
    yet holding the job) is canceled too, so that it never starts. Returns the runs stopped."""
    from dagster import DagsterInstance

    from jobs_pipeline.orchestration.stop_runs import stop_runs_of_queueing

    ensure_dagster_home()
    with DagsterInstance.get() as instance:
        return stop_runs_of_queueing(instance, job.id, job.queue_count, f"job {job.id} canceled")


def _runs_with_key(instance, key: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Ids of the runs carrying this run key, oldest first."""
    from dagster import RunsFilter

    from jobs_pipeline.orchestration.tags import RUN_KEY_TAG

    records = instance.get_run_records(RunsFilter(tags={RUN_KEY_TAG: key}), ascending=True)
    return [record.dagster_run.run_id for record in records]


def _console_level(quiet: bool) -> str:
    """The level of the console lines of the code server and run worker this command starts."""
    if quiet and LOG_LEVEL.read() not in ("debug", "info"):
        return "WARNING"
    return "INFO"


def _launch(perfdb: PerfDB, job: Job, instance, console_level: str) -> str:  # type: ignore[no-untyped-def]
    """Creates the job's run with its run key and launches it, unless the queue sensor created
    one at the same moment: then this run is deleted before it starts. Returns its id."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from jobs_pipeline.jobs.registry import check_queued_job
    from jobs_pipeline.orchestration.sensors import run_key, run_request

    check_queued_job(perfdb, job)
    request = run_request(job, perfdb.schedules.periods_of_jobs([job.id]).get(job.id))
    if console_level != "INFO":
        request = request.with_replaced_attrs(
            run_config=_with_console_level(request.run_config, console_level)
        )
    with WorkspaceProcessContext(
        instance,
        WorkspaceFileTarget(paths=[str(WORKSPACE_FILE)]),
        code_server_log_level=console_level,
    ) as workspace_process:
        workspace = workspace_process.create_request_context()
        run = _create_run(instance, workspace, request)
        # A sensor tick that read the job as Queued before this run existed may still be
        # creating its own run: once it is over, the oldest run with the key is the job's.
        _wait_for_queue_sensor_tick(instance, workspace)
        if _runs_with_key(instance, run_key(job))[:1] != [run.run_id]:
            _forget_unlaunched(instance, run.run_id)
            return run.run_id
        launched = False
        try:
            instance.launch_run(run.run_id, workspace)
            launched = True
        finally:
            if not launched:
                _forget_unlaunched(instance, run.run_id)
    return run.run_id


def _wait_for_queue_sensor_tick(  # type: ignore[no-untyped-def]
    instance, workspace, timeout_seconds: float = 10.0
) -> None:
    """Waits until no tick of the queue sensor is under way (a daemon that died mid-tick leaves
    one STARTED forever: given up after `timeout_seconds`)."""
    from dagster._core.scheduler.instigation import TickStatus

    from jobs_pipeline.orchestration.sensors import QUEUE_SENSOR_NAME

    sensors = [
        repository.get_sensor(QUEUE_SENSOR_NAME)
        for name in workspace.get_code_location_entries()
        for repository in workspace.get_code_location(name).get_repositories().values()
        if repository.has_sensor(QUEUE_SENSOR_NAME)
    ]
    deadline = time.monotonic() + timeout_seconds
    for sensor in sensors:
        while time.monotonic() < deadline:
            ticks = instance.get_ticks(
                sensor.get_remote_origin_id(),
                sensor.selector_id,
                limit=1,
                statuses=[TickStatus.STARTED],
            )
            if not ticks:
                break
            time.sleep(0.1)


def _forget_unlaunched(instance, run_id: str) -> None:  # type: ignore[no-untyped-def]
    """A run whose launch failed or was interrupted before it started would stay NOT_STARTED
    forever (and hold the job's run key): it is deleted, and the job, still Queued, is left to
    the queue sensor or to the run that was first."""
    from dagster import DagsterRunStatus

    run = instance.get_run_by_id(run_id)
    if run is not None and run.status == DagsterRunStatus.NOT_STARTED:
        instance.delete_run(run_id)


@contextmanager
def _subprocess_output_to_stderr() -> Iterator[None]:
    """The code server and run worker inherit this process's stdout and log to it; while they
    run, file descriptor 1 points at stderr, so that stdout carries only the outcome."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _with_console_level(run_config, level: str) -> dict:  # type: ignore[no-untyped-def]
    config = run_config if isinstance(run_config, dict) else run_config.to_config_dict()
    return {**config, "loggers": {"console": {"config": {"log_level": level}}}}


def _create_run(instance, workspace, request):  # type: ignore[no-untyped-def]
    from dagster._core.definitions.selector import JobSubsetSelector

    from jobs_pipeline.orchestration.tags import RUN_KEY_TAG

    location_names = list(workspace.get_code_location_entries())
    if not location_names:
        raise PerfDBError(f"no code location could be loaded from {WORKSPACE_FILE}")
    for location_name in location_names:
        error = workspace.get_code_location_error(location_name)
        if error is not None:
            raise PerfDBError(f"code location {location_name!r} failed to load: {error.message}")
    location = workspace.get_code_location(location_names[0])
    repository_name = next(iter(location.get_repositories()))
    selector = JobSubsetSelector(
        location_name=location.name,
        repository_name=repository_name,
        job_name=request.job_name,
        op_selection=None,
    )
    remote_job = location.get_job(selector)
    run_config = request.run_config
    if not isinstance(run_config, dict):
        run_config = run_config.to_config_dict()
    plan = location.get_execution_plan(
        remote_job, run_config, step_keys_to_execute=None, known_state=None, instance=instance
    )
    return instance.create_run(
        job_name=request.job_name,
        run_id=None,
        run_config=run_config,
        # The run key as the sensor's runs carry it: the sensor and other `job run`s see the
        # job's run whoever launched it.
        tags={**remote_job.tags, **request.tags, RUN_KEY_TAG: request.run_key},
        job_snapshot=remote_job.job_snapshot,
        execution_plan_snapshot=plan.execution_plan_snapshot,
        parent_job_snapshot=remote_job.parent_job_snapshot,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
        asset_graph=location.get_repository(repository_name).asset_graph,
        status=None,
        root_run_id=None,
        parent_run_id=None,
        step_keys_to_execute=None,
        op_selection=None,
        resolved_op_selection=None,
        asset_selection=None,
        asset_check_selection=None,
    )


def _wait(  # type: ignore[no-untyped-def]
    instance,
    run_id: str,
    deadline: float,
    poll_seconds: float,
    on_poll: Callable[[], object] | None = None,
) -> str:
    while True:
        if on_poll is not None:
            on_poll()
        run = instance.get_run_by_id(run_id)
        if run is not None and run.is_finished:
            return run.status.value
        if time.monotonic() > deadline:
            raise RunFailed(f"run {run_id} did not finish in time; it goes on in the background")
        time.sleep(poll_seconds)
