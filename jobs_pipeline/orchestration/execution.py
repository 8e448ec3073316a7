"""Execution profiles: how a run executes its step ops, chosen by the deployment.

- `in_process`: every op in the run worker, one after another (the default; right for light
  steps, the cheapest per step).
- `multiprocess`: Dagster's multiprocess executor, one process per op started from a
  `forkserver` that has the project imported, at most `JOBS_PIPELINE_MAX_CONCURRENT_STEPS` at
  once (default: the number of cores).
- `celery`: dagster-celery's executor; ops run on Celery workers (`scripts/celery-worker`) that
  share the Dagster instance and the performance database, over the broker in
  `JOBS_PIPELINE_CELERY_BROKER`.

Each profile is its own Dagster job with the same graph (`perfdb_job`, `perfdb_job_multiprocess`,
`perfdb_job_celery`), so a run's executor is fixed when it is created and a re-execution from the
UI uses the same one. `JOBS_PIPELINE_EXECUTION` names the profile of every job type;
`JOBS_PIPELINE_HEAVY_EXECUTION` the one of job types that declare heavy steps (`_heavy_steps`),
which defaults to the first.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any

import dagster as dg

from jobs_pipeline import settings
from jobs_pipeline.orchestration.heartbeats import orchestrator_heartbeat
from jobs_pipeline.orchestration.ops import job_id_in_run_config
from jobs_pipeline.orchestration.resources import PerfDBResource

PROFILE_TAG = "jobs_pipeline/execution"

# Celery settings of the executor and the workers (scripts/celery.yaml says the same): a task is
# acknowledged only once it ended, and given back to the broker when its worker dies, so a step
# whose worker is killed runs again on another worker instead of being lost; a worker takes one
# task at a time, so that a long step does not hold others back.
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": False,
}


class Profile(StrEnum):
    IN_PROCESS = "in_process"
    MULTIPROCESS = "multiprocess"
    CELERY = "celery"

    @property
    def job_name(self) -> str:
        return "perfdb_job" if self is Profile.IN_PROCESS else f"perfdb_job_{self.value}"


def profile_for(heavy_steps: bool, environ: Mapping[str, str] | None = None) -> Profile:
    """The profile of a job type's runs under this deployment's settings."""
    default = Profile(settings.EXECUTION.read(environ))
    heavy = settings.HEAVY_EXECUTION.read(environ)
    return Profile(heavy) if heavy_steps and heavy is not None else default


def _env_or_default(setting: settings.Setting[str]) -> dict[str, str] | str:
    # Read by Dagster when the run starts (so a password stays out of the job's snapshot).
    return {"env": setting.name} if setting.is_set() else setting.default


class _BeatingExecutor(dg.Executor):
    """Another executor, plus the run's heartbeat from the run worker while it orchestrates:
    with ops in other processes, nothing else beats while steps wait for a pool slot or a free
    worker. Everything else is the wrapped executor's (dagster-celery's loop reads its
    settings from `plan_context.executor`)."""

    def __init__(self, inner: dg.Executor) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def retries(self) -> Any:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> Any:
        return self._inner.step_dependency_config

    def execute(self, plan_context: Any, execution_plan: Any) -> Iterator[Any]:
        run_config = dict(plan_context.run_config)
        job_id = job_id_in_run_config(run_config)
        if job_id is None:  # not a run of a queued job
            yield from self._inner.execute(plan_context, execution_plan)
            return
        # The database the run's ops use: the resource as the run config sets it.
        url = run_config.get("resources", {}).get("perfdb", {}).get("config", {}).get("url")
        perfdb = PerfDBResource(url=url).get()
        with orchestrator_heartbeat(perfdb, plan_context.run_id, job_id):
            yield from self._inner.execute(plan_context, execution_plan)


def _with_orchestrator_heartbeat(executor_def: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    create = executor_def.executor_creation_fn
    if create is None:
        warnings.warn(
            f"{executor_def.name} has no creation function: its runs get no heartbeat from "
            f"the run worker",
            stacklevel=2,
        )
        return executor_def
    return dg.ExecutorDefinition(
        name=executor_def.name,
        config_schema=executor_def.config_schema,  # type: ignore[arg-type]  # Dagster takes its own
        requirements=executor_def.get_requirements,
        executor_creation_fn=lambda init_context: _BeatingExecutor(create(init_context)),
        description=executor_def.description,
    )


def executor_for(profile: Profile) -> dg.ExecutorDefinition:
    if profile is Profile.IN_PROCESS:
        return dg.in_process_executor  # its ops beat from the run worker themselves
    if profile is Profile.MULTIPROCESS:
        return _with_orchestrator_heartbeat(dg.multiprocess_executor).configured(
            {
                "max_concurrent": settings.MAX_CONCURRENT_STEPS.read(),
                # A step process forks from a server that has imported the project once.
                "start_method": {"forkserver": {"preload_modules": ["jobs_pipeline.definitions"]}},
            },
            name="multiprocess_executor",
        )
    from dagster_celery import celery_executor

    return _with_orchestrator_heartbeat(celery_executor).configured(
        {
            "broker": _env_or_default(settings.CELERY_BROKER),
            "backend": _env_or_default(settings.CELERY_BACKEND),
            # Workers listen on this queue (`scripts/celery-worker`): one per deployment.
            "config_source": {
                **CELERY_SETTINGS,
                "task_default_queue": settings.CELERY_QUEUE.read(),
            },
        },
        name="celery_executor",
    )
