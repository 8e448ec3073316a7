"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

from __future__ import annotations

import warnings

import dagster as dg

from jobs_pipeline.orchestration import dagster_scaling
from jobs_pipeline.orchestration.assets import load_asset_specs
from jobs_pipeline.orchestration.console import console_logger
from jobs_pipeline.orchestration.execution import PROFILE_TAG, Profile, executor_for
from jobs_pipeline.orchestration.housekeeping_schedule import (
    perfdb_housekeeping,
    perfdb_housekeeping_daily,
)
from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import STEP_IO_MANAGER_KEY, perfdb_job_graph
from jobs_pipeline.orchestration.reconciler import perfdb_reconciler
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.run_workers import start_run_workers_from_forkserver
from jobs_pipeline.orchestration.scheduler import perfdb_scheduler
from jobs_pipeline.orchestration.sensors import queue_sensor_factory

# Dagster warns about its own `owners` parameter whenever it binds resources to a sensor; the
# sensors here use no owners. Only that message is silenced, in the processes loading this.
warnings.filterwarnings(
    "ignore", message=r"Parameter `owners` of initializer `SensorDefinition.__init__`"
)

# Runs of thousands of step ops: Dagster's scheduler in linear time (see the module).
dagster_scaling.install()
# The code server that loads this forks its run workers from a warm process (run_workers.py).
start_run_workers_from_forkserver()

_DESCRIPTIONS = {
    Profile.IN_PROCESS: "every step in the run worker, one after another",
    Profile.MULTIPROCESS: "steps in parallel processes of the run's machine",
    Profile.CELERY: "steps on Celery workers",
}

# One Dagster job per execution profile (`orchestration/execution.py`), all of the same graph.
perfdb_jobs = [
    perfdb_job_graph.to_job(
        name=profile.job_name,
        description=f"One job of the performance database's queue, one op per job step: "
        f"{_DESCRIPTIONS[profile]}.",
        executor_def=executor_for(profile),
        # Dagster's console logger, with failures meant for people on one line.
        logger_defs={"console": console_logger},
        tags={PROFILE_TAG: profile.value},
    )
    for profile in Profile
]
perfdb_job = perfdb_jobs[0]

defs = dg.Definitions(
    # Features and alarm occurrences as external assets, read from the database's catalog now.
    assets=load_asset_specs(),
    jobs=[*perfdb_jobs, perfdb_housekeeping],
    schedules=[perfdb_housekeeping_daily],
    sensors=[queue_sensor_factory(perfdb_jobs), perfdb_reconciler, perfdb_scheduler],
    resources={"perfdb": PerfDBResource(), STEP_IO_MANAGER_KEY: StepIdIOManager()},
)
