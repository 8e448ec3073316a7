"""The run config and the resources of `perfdb_job` in a test: the queue sensor's config for one
job, and the resources on a test's database."""

from __future__ import annotations

from typing import Any

from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, STEP_IO_MANAGER_KEY
from jobs_pipeline.orchestration.resources import PerfDBResource


def plan_config(job_id: int) -> dict[str, Any]:
    """The run config the queue sensor gives a job's run."""
    return {"ops": {PLAN_OP_NAME: {"config": {"job_id": job_id}}}}


def perfdb_job_resources(url: str) -> dict[str, Any]:
    """The resources of `perfdb_job` on the database at `url` (the code location's read
    `PERFDB_URL` instead)."""
    return {"perfdb": PerfDBResource(url=url), STEP_IO_MANAGER_KEY: StepIdIOManager()}
