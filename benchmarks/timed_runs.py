"""Timed runs of one alarm-calculation job, standalone and through Dagster in this process, for
the orchestration benchmarks (`orchestration.py`, `burst.py`): the job's creation on the
synthetic fleet, its runs, the check that it ended Finished, and where profiled time goes.

Dagster's multiprocess executor loads this file by path in each step process
(`multiprocess_perfdb_job`), so it imports nothing from the benchmarks' folder.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository

from jobs_pipeline.demo.synthetic_fleet import SyntheticFleet
from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, STEP_IO_MANAGER_KEY, perfdb_job_graph
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.sensors import run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import PROJECT_ROOT

ALARM_CALC = "Alarm Calculation"


def create_alarm_job(
    perfdb: PerfDB,
    fleet: SyntheticFleet,
    description: str,
    object_names: Sequence[str] | None = None,
    alarm_ids: Sequence[int] | None = None,
) -> int:
    """A new alarm-calculation job over the fleet's period (by default all its objects and
    alarms); its id."""
    parameters = {
        "object_names": list(fleet.object_names if object_names is None else object_names),
        "alarm_ids": list(
            [alarm.alarm_id for alarm in fleet.alarms] if alarm_ids is None else alarm_ids
        ),
        "start": fleet.start.isoformat(),
        "end": fleet.end.isoformat(),
    }
    return create_job(perfdb, ALARM_CALC, parameters, description=description).id


def check_finished(perfdb: PerfDB, job_id: int, steps: int | None = None) -> int:
    """The job's number of steps, once checked that it and every step are Finished."""
    job = perfdb.queue.get_job(job_id)
    states = [step.state for step in perfdb.queue.get_steps(job_id)]
    if job.state != JobState.FINISHED or set(states) != {JobState.FINISHED}:
        raise RuntimeError(f"job {job_id} ended {job.state.label}: {job.comment}")
    if steps is not None and len(states) != steps:
        raise RuntimeError(f"job {job_id} has {len(states)} steps, expected {steps}")
    return len(states)


def run_standalone(perfdb: PerfDB, job_id: int) -> tuple[float, int]:
    """Requeues the job and runs it with `JobInstance.run()`: seconds, and no events."""
    perfdb.queue.queue_job(job_id, actor="benchmark")
    started = time.perf_counter()
    failed = JobAlarmCalc(job_id, perfdb=perfdb).run()
    seconds = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"{len(failed)} steps failed")
    return seconds, 0


def run_dagster(
    perfdb: PerfDB,
    job_id: int,
    instance: dg.DagsterInstance,
    job: ReconstructableJob,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, int]:
    """Requeues the job and runs it through Dagster in this process: seconds, and the run's
    events."""
    queued = perfdb.queue.queue_job(job_id, actor="benchmark")
    result, seconds = execute_timed(job, instance, queued, profiler)
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    return seconds, len(instance.all_logs(result.run_id))


def execute_timed(
    job: ReconstructableJob,
    instance: dg.DagsterInstance,
    queued: Job,
    profiler: cProfile.Profile | None = None,
) -> tuple[dg.ExecutionResult, float]:
    """One run of the queued job with `execute_job`, as a run worker does; and its seconds."""
    run_config = {"ops": {PLAN_OP_NAME: {"config": {"job_id": queued.id}}}}
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = dg.execute_job(job, instance, run_config=run_config, tags=run_tags(queued))
    if profiler is not None:
        profiler.disable()
    return result, time.perf_counter() - started


def production_job() -> ReconstructableJob:
    """The code location's `perfdb_job`, as a run worker loads it."""
    return ReconstructableRepository.for_module(
        "jobs_pipeline.definitions", "defs", str(PROJECT_ROOT)
    ).get_reconstructable_job("perfdb_job")


def multiprocess_perfdb_job() -> dg.JobDefinition:
    """The production graph and resources with the multiprocess executor; a module-level
    function, so that each step's process can build it again from this file."""
    return perfdb_job_graph.to_job(
        name="perfdb_job_multiprocess",
        resource_defs={"perfdb": PerfDBResource(), STEP_IO_MANAGER_KEY: StepIdIOManager()},
        executor_def=dg.multiprocess_executor,
    )


def multiprocess_job() -> ReconstructableJob:
    return ReconstructableJob.for_file(str(Path(__file__).resolve()), "multiprocess_perfdb_job")


# Where cProfile's own time goes, by the file (or C function) that spent it.
COMPONENTS = (
    ("psycopg2", "psycopg2: Dagster storage round trips"),
    ("/psycopg/", "psycopg: performance database driver"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/dagster_postgres/", "dagster framework"),
    ("/dagster_shared/", "dagster framework"),
    ("/dagster/", "dagster framework"),
    ("/jobs_pipeline/", "jobs_pipeline"),
    ("/pandas/", "pandas and numpy"),
    ("/numpy/", "pandas and numpy"),
    ("numpy", "pandas and numpy"),
)


def component(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    return next((name for key, name in COMPONENTS if key in where), "Python and other libraries")


def own_time_by_component(stats: pstats.Stats) -> dict[str, float]:
    """cProfile's own time per component, largest first."""
    own: defaultdict[str, float] = defaultdict(float)
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own[component(filename, function)] += row[2]
    return dict(sorted(own.items(), key=lambda item: -item[1]))
