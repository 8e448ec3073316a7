"""What a run worker imports, imported once by the forkserver that run workers are forked from
(`run_workers.py`); a module that fails to import here is imported by the worker as usual."""

from __future__ import annotations

import importlib
import logging

logger = logging.getLogger(__name__)

RUN_WORKER_MODULES = (
    # The worker's entry point in Dagster's code server, and what it builds before the first op.
    "dagster._grpc.impl",
    "dagster._core.execution.api",
    "dagster._core.execution.plan.active",
    "dagster._core.executor.in_process",
    "dagster._core.instance.factory",
    "dagster._core.secrets.env_file",
    "dagster._core.storage.local_compute_log_manager",
    "upath",
    # The instance of dagster.yaml: storage and run coordinator classes.
    "jobs_pipeline.orchestration.instance_storage",
    "jobs_pipeline.orchestration.run_coordinator",
    # The code location, and what its ops import only when they need it.
    "jobs_pipeline.definitions",
    "jobs_pipeline.report",
    # matplotlib, which the report draws with; imported on the first picture otherwise.
    "matplotlib.backends.backend_agg",
    "matplotlib.dates",
    "matplotlib.figure",
)


def preload() -> list[str]:
    """Imports what it can; returns the modules that failed (each logged)."""
    failed = []
    for name in RUN_WORKER_MODULES:
        try:
            importlib.import_module(name)
        except Exception:
            logger.warning("run worker preload: %s not imported", name, exc_info=True)
            failed.append(name)
    return failed


preload()
