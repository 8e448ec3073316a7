"""Real Dagster processes for the orchestration tests: a workspace, a scratch environment, the
daemon of a test's deployment, and job types whose steps take as long as a test needs. The parts
the benchmarks share (databases, Dagster home, daemon, polling) come from `scratch_deployment`
and are importable from here too.

`SlowStepsJob` is registered only in the processes that load `slow_steps_definitions` (the code
server and the run workers of a workspace made by `write_workspace`), never in the test process:
registering it there would add a job type to every other test's database.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from jobs_pipeline.jobs.alarm_calc import JobAlarmCalc
from jobs_pipeline.jobs.base import JobInstance
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import JobTypeSpec
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.conftest import PG_ADMIN_URL
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    DAGSTER_PG_URL_ENV,
    INSTANCE_CONFIG,
    INTERPRETER_BIN,
    PRODUCTION_WORKSPACE,
    REPO_ROOT,
    Daemon,
    dagster_environment,
    finished_run,
    instance_for_environment,
    make_dagster_home,
    running_daemon,
    stop_process_group,
    wait_for,
)
from jobs_pipeline_tests.scratch_databases import scratch_database

# What the tests import from here, the shared parts of `scratch_deployment` among them.
__all__ = [
    "CANCELING_STEPS_SPEC",
    "DAGSTER_PG_URL_ENV",
    "INSTANCE_CONFIG",
    "INTERPRETER_BIN",
    "PACED_ALARM_CALC_SPEC",
    "PACED_STEP_SECONDS",
    "PACE_ENV",
    "PID_DIR_ENV",
    "PRODUCTION_WORKSPACE",
    "REPO_ROOT",
    "SLOW_STEPS_SPEC",
    "CancelingStepsJob",
    "Daemon",
    "DaemonDeployment",
    "PacedAlarmCalc",
    "SlowStepsJob",
    "add_slow_steps_type",
    "daemon_deployment",
    "dagster_environment",
    "finished_run",
    "instance_for_environment",
    "job_in_state",
    "make_dagster_home",
    "running_daemon",
    "scratch_dagster_environment",
    "scratch_pg_database",
    "slow_steps_definitions",
    "stop_process_group",
    "wait_for",
    "write_workspace",
]


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


class CancelingStepsJob(JobInstance):
    """`steps` quick steps on object `object`; the step at position `cancel_after - 1` requests
    the cancel of its own job (as a person would, with `job cancel`) and then finishes, so that
    exactly `cancel_after` steps Finished when the run hears of the cancel."""

    _name = "Canceling Steps"
    _description = "Cancels itself after some steps; for the tests of canceled runs"
    _parameters_schema = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "minLength": 1},
            "steps": {"type": "integer", "minimum": 1},
            "cancel_after": {"type": "integer", "minimum": 1},
        },
        "required": ["object", "steps", "cancel_after"],
        "additionalProperties": False,
    }

    def _create_steps(self) -> list[dict[str, Any]]:
        name = self.parameters["object"]
        object_id = self.perfdb.catalog.object_ids([name])[name]
        return [{"object_id": object_id} for _ in range(self.parameters["steps"])]

    def _run_step(self, step_id: int) -> dict[str, Any]:
        if self.steps[step_id].position == self.parameters["cancel_after"] - 1:
            self.perfdb.queue.cancel_job(self.job_id, actor="cli")
        return {}


CANCELING_STEPS_SPEC = JobTypeSpec(
    name=CancelingStepsJob._name,
    description=CancelingStepsJob._description,
    parameters_schema=CancelingStepsJob._parameters_schema,
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
    register(CancelingStepsJob)
    return defs


# --- workspace and scratch environment -----------------------------------------------------------


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
    """The URL of a new, empty database on the tests' PostgreSQL server, dropped afterwards."""
    with scratch_database(PG_ADMIN_URL, prefix) as url:
        yield url


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


# --- conditions and deployments ------------------------------------------------------------------


def job_in_state(perfdb: PerfDB, job_id: int, *states: JobState) -> Callable[[], Any]:
    def check() -> Any:
        job = perfdb.queue.get_job(job_id)
        return job if job.state in states else None

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
