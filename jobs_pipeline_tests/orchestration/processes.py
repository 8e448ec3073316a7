"""Real Dagster processes for the orchestration tests: a scratch Dagster home, a workspace, the
daemon in its own process group, polling, and a job type whose steps take as long as a test needs.

`SlowStepsJob` is registered only in the processes that load `slow_steps_definitions` (the code
server and the run workers of a workspace made by `write_workspace`), never in the test process:
registering it there would add a job type to every other test's database.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg

from jobs_pipeline.jobs.alarm_calc import JobAlarmCalc
from jobs_pipeline.jobs.base import JobInstance
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import PERFDB_URL_ENV
from jobs_pipeline.perfdb.records import JobTypeSpec
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.conftest import create_pg_database, drop_pg_database

REPO_ROOT = Path(__file__).resolve().parents[2]
# The executables of the environment running the tests (dagster, dagster-daemon, celery,
# jobs-pipeline): not resolved, a virtual environment's python is a link out of it.
INTERPRETER_BIN = Path(sys.executable).parent
PRODUCTION_WORKSPACE = REPO_ROOT / "workspace.yaml"
INSTANCE_CONFIG = REPO_ROOT / "dagster.yaml"
DAGSTER_PG_URL_ENV = "DAGSTER_PG_URL"

T = TypeVar("T")


# --- a job type with slow steps ----------------------------------------------------------------


class SlowStepsJob(JobInstance):
    """One step per entry of `seconds`, on object `object`. Each step first writes the id of the
    process running it to `pid_file` (the run worker, under the in-process executor), then sleeps
    its number of seconds."""

    _name = "Slow Steps"
    _description = "Sleeps; for the tests of runs that die"
    # Runs go to the heavy profile when a test's deployment sets one.
    _heavy_steps = True
    _parameters_schema = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "minLength": 1},
            "seconds": {"type": "array", "items": {"type": "number", "minimum": 0}, "minItems": 1},
            "pid_file": {"type": "string", "minLength": 1},
        },
        "required": ["object", "seconds", "pid_file"],
        "additionalProperties": False,
    }

    def _create_steps(self) -> list[dict[str, Any]]:
        name = self.parameters["object"]
        object_id = self.perfdb.catalog.object_ids([name])[name]
        return [{"object_id": object_id} for _ in self.parameters["seconds"]]

    def _run_step(self, step_id: int) -> dict[str, Any]:
        Path(self.parameters["pid_file"]).write_text(str(os.getpid()))
        time.sleep(self.parameters["seconds"][self.steps[step_id].position])
        return {}


SLOW_STEPS_SPEC = JobTypeSpec(
    name=SlowStepsJob._name,
    description=SlowStepsJob._description,
    parameters_schema=SlowStepsJob._parameters_schema,
)


def add_slow_steps_type(perfdb: PerfDB, object_name: str) -> None:
    """Writes the job type's row and the object its steps use (what `db upgrade` would do)."""
    perfdb.queue.upsert_job_types([SLOW_STEPS_SPEC])
    perfdb.catalog.ensure_objects([object_name])


class HungStepsJob(SlowStepsJob):
    """`SlowStepsJob` whose steps may run `MAX_STEP_SECONDS` at most: a step given more seconds
    than that hangs as far as the reconciler is concerned."""

    _name = "Hung Steps"
    _description = "Sleeps past its maximum step runtime; for the tests of step limits"
    _heavy_steps = False
    MAX_STEP_SECONDS = 4.0
    _max_step_seconds = MAX_STEP_SECONDS


HUNG_STEPS_SPEC = JobTypeSpec(
    name=HungStepsJob._name,
    description=HungStepsJob._description,
    parameters_schema=HungStepsJob._parameters_schema,
)


class PacedAlarmCalc(JobAlarmCalc):
    """The alarm calculation, each step first writing its process id to
    `$JOBS_PIPELINE_TEST_PID_DIR/<job id>.pid` and then taking `PACED_STEP_SECONDS`, so that
    faults injected by a test land in the middle of steps. Its results are `JobAlarmCalc`'s."""

    _name = "Alarm Calculation (paced)"
    _description = "The alarm calculation, slowed down; for the tests of faults"

    def _run_step(self, step_id: int) -> Any:
        pid_dir = os.environ.get(PID_DIR_ENV)
        if pid_dir:
            (Path(pid_dir) / f"{self.job_id}.pid").write_text(str(os.getpid()))
        time.sleep(float(os.environ.get(PACE_ENV) or PACED_STEP_SECONDS))
        return super()._run_step(step_id)


PID_DIR_ENV = "JOBS_PIPELINE_TEST_PID_DIR"
PACED_STEP_SECONDS = 0.4
PACE_ENV = "JOBS_PIPELINE_TEST_STEP_SECONDS"  # another pace, for the processes given it
PACED_ALARM_CALC_SPEC = JobTypeSpec(
    name=PacedAlarmCalc._name,
    description=PacedAlarmCalc._description,
    parameters_schema=PacedAlarmCalc._parameters_schema,
)


@dg.definitions
def slow_steps_definitions() -> dg.Definitions:
    """The production code location, in a process that also knows the test job types."""
    from jobs_pipeline.definitions import defs
    from jobs_pipeline.jobs.registry import register

    register(SlowStepsJob)
    register(HungStepsJob)
    register(PacedAlarmCalc)
    return defs


# --- Dagster home, workspace and environment ---------------------------------------------------


def make_dagster_home(directory: Path) -> Path:
    """A Dagster home holding a copy of the repository's `dagster.yaml`."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_CONFIG, directory / "dagster.yaml")
    return directory


def write_workspace(directory: Path) -> Path:
    """A workspace whose code location is `slow_steps_definitions`."""
    path = directory / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        "  - python_module:\n"
        f"      module_name: {__name__}\n"
        "      attribute: slow_steps_definitions\n"
        f"      working_directory: {REPO_ROOT}\n"
        "      location_name: jobs_pipeline\n"
    )
    return path


@contextmanager
def scratch_pg_database(prefix: str = "jp_dagster") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards (connections and all)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_pg_database(name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_pg_database(name)


def dagster_environment(
    dagster_home: Path, perfdb_url: str, dagster_pg_url: str | None = None
) -> dict[str, str]:
    """The environment of a Dagster process: its home, its storage and the performance database.
    Without `dagster_pg_url` the instance keeps its storage in SQLite files under the home."""
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), PERFDB_URL_ENV: perfdb_url}
    env.pop(DAGSTER_PG_URL_ENV, None)
    if dagster_pg_url:
        env[DAGSTER_PG_URL_ENV] = dagster_pg_url
    # The code location must import this repository's tests package in every process.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@contextmanager
def instance_for_environment(env: Mapping[str, str]) -> Iterator[dg.DagsterInstance]:
    """An instance on the same storage as the processes started with `env`. The storage reads
    its URL from the environment when the instance is built, so it is set just for that."""
    saved = {name: os.environ.get(name) for name in ("DAGSTER_HOME", DAGSTER_PG_URL_ENV)}
    try:
        for name in saved:
            if env.get(name):
                os.environ[name] = env[name]
            else:
                os.environ.pop(name, None)
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    with instance:
        yield instance


@contextmanager
def scratch_dagster_environment(
    perfdb_url: str, directory: Path, settings: Mapping[str, str] | None = None
) -> Iterator[dict[str, str]]:
    """The environment of a deployment whose Dagster home is under `directory` and whose Dagster
    storage is a scratch PostgreSQL database, with `settings` added; the database is dropped
    afterwards."""
    with scratch_pg_database() as dagster_pg_url:
        env = dagster_environment(
            make_dagster_home(directory / "dagster_home"), perfdb_url, dagster_pg_url
        )
        env.update(settings or {})
        yield env


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A `dagster-daemon run` process, the leader of its own process group."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the whole group (daemon, code server, run workers), SIGKILL if it hangs."""
        stop_process_group(self.process, timeout)


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    # Children may outlive the leader (a code server still shutting down).
    deadline = time.monotonic() + timeout
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def running_daemon(workspace: Path, env: Mapping[str, str], log_path: Path) -> Iterator[Daemon]:
    """`dagster-daemon run -w workspace`, stopped with its process group whatever happens."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(INTERPRETER_BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            env=dict(env),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    daemon = Daemon(process=process, log_path=log_path)
    try:
        yield daemon
    finally:
        daemon.stop()


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    daemon: Daemon | None = None,
) -> T:
    """Polls until `condition()` returns something truthy and returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if daemon is not None and daemon.process.poll() is not None:
            raise AssertionError(
                f"the daemon exited while waiting for {what}:\n{daemon.log_tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"\ndaemon log:\n{daemon.log_tail()}" if daemon is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")
        time.sleep(interval)


def job_in_state(perfdb: PerfDB, job_id: int, *states: JobState) -> Callable[[], Any]:
    def check() -> Any:
        job = perfdb.queue.get_job(job_id)
        return job if job.state in states else None

    return check


def finished_run(instance: dg.DagsterInstance, run_id: str) -> Callable[[], Any]:
    def check() -> Any:
        run = instance.get_run_by_id(run_id)
        return run if run is not None and run.is_finished else None

    return check


@dataclass(frozen=True)
class DaemonDeployment:
    """A running `dagster-daemon` and an instance on its storage, for a test to look through."""

    env: Mapping[str, str]
    daemon: Daemon
    instance: dg.DagsterInstance


@contextmanager
def daemon_deployment(
    env: Mapping[str, str], directory: Path, workspace: Path | None = None
) -> Iterator[DaemonDeployment]:
    """The daemon of the deployment `env` on `workspace` (by default the slow-steps code location,
    written to `directory`), logging to `directory/daemon.log`; stopped with every process it
    started, whatever happens."""
    workspace = workspace or write_workspace(directory)
    with (
        running_daemon(workspace, env, directory / "daemon.log") as daemon,
        instance_for_environment(env) as instance,
    ):
        yield DaemonDeployment(env=env, daemon=daemon, instance=instance)
