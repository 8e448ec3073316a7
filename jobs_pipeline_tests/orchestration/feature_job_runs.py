"""Feature Calculation jobs over chained features (power_chain.py) and runs of the code location's
`perfdb_job`, in process or multiprocess, on a test's database."""

from __future__ import annotations

import dagster as dg

from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import Step
from jobs_pipeline_tests.orchestration.perfdb_job_config import plan_config
from jobs_pipeline_tests.orchestration.scratch_deployment import REPO_ROOT

FEATURE_CALC = "Feature Calculation"


def in_process_job() -> dg.JobDefinition:
    return defs.get_job_def("perfdb_job")


def multiprocess_job() -> dg.JobDefinition:
    return defs.get_job_def("perfdb_job_multiprocess")


def feature_job(perfdb: PerfDB, objects: list[str], period: dict[str, str]) -> int:
    parameters = {"object_names": objects, "feature_names": ["doubled", "power"], **period}
    return create_job(perfdb, FEATURE_CALC, parameters, queue=True).id


def steps_by_key(perfdb: PerfDB, job_id: int) -> dict[tuple[str, str | None], Step]:
    return {(step.object_name, step.feature_name): step for step in perfdb.queue.get_steps(job_id)}


def run(job: dg.JobDefinition, job_id: int, url: str, instance: dg.DagsterInstance, **options):
    """A run of the code location's job; the database is named in the run config (step
    processes fork from a server started once, with the environment of the first test). The
    step processes import this module from the repository root, wherever pytest was started."""
    recipe = dg.build_reconstructable_job(
        __name__,
        in_process_job.__name__ if job.name == "perfdb_job" else multiprocess_job.__name__,
        reconstructor_working_directory=str(REPO_ROOT),
    )
    return dg.execute_job(
        recipe,
        instance=instance,
        run_config={**plan_config(job_id), "resources": {"perfdb": {"config": {"url": url}}}},
        **options,
    )
