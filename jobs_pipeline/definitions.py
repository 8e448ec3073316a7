"""The Dagster code location: `dagster dev -w workspace.yaml` loads `defs` from here."""

from __future__ import annotations

import warnings

import dagster as dg

from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import STEP_IO_MANAGER_KEY, perfdb_job_graph
from jobs_pipeline.orchestration.reconciler import perfdb_reconciler
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.run_workers import start_run_workers_from_forkserver
from jobs_pipeline.orchestration.sensors import queue_sensor_factory

# Dagster warns about its own `owners` parameter whenever it binds resources to a sensor; the
# sensors here use no owners. Only that message is silenced, in the processes loading this.
warnings.filterwarnings(
    "ignore", message=r"Parameter `owners` of initializer `SensorDefinition.__init__`"
)

# The code server that loads this forks its run workers from a warm process (run_workers.py).
start_run_workers_from_forkserver()

perfdb_job = perfdb_job_graph.to_job(
    name="perfdb_job",
    description="One job of the performance database's queue; one op per job step.",
    executor_def=dg.in_process_executor,
)

defs = dg.Definitions(
    jobs=[perfdb_job],
    sensors=[queue_sensor_factory(perfdb_job), perfdb_reconciler],
    resources={"perfdb": PerfDBResource(), STEP_IO_MANAGER_KEY: StepIdIOManager()},
)
