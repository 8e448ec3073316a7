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

import os
import warnings
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import dagster as dg

from jobs_pipeline.orchestration.heartbeats import orchestrator_heartbeat
from jobs_pipeline.orchestration.ops import job_id_in_run_config
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.perfdb.errors import InputError

PROFILE_ENV = "JOBS_PIPELINE_EXECUTION"
HEAVY_PROFILE_ENV = "JOBS_PIPELINE_HEAVY_EXECUTION"
MAX_CONCURRENT_STEPS_ENV = "JOBS_PIPELINE_MAX_CONCURRENT_STEPS"
CELERY_BROKER_ENV = "JOBS_PIPELINE_CELERY_BROKER"
CELERY_BACKEND_ENV = "JOBS_PIPELINE_CELERY_BACKEND"
CELERY_QUEUE_ENV = "JOBS_PIPELINE_CELERY_QUEUE"
DEFAULT_CELERY_QUEUE = "dagster"
DEFAULT_CELERY_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_CELERY_BACKEND = "rpc://"
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


def parse_profile(text: str, *, setting: str) -> Profile:
    try:
        return Profile(text.strip().lower())
    except ValueError:
        known = ", ".join(profile.value for profile in Profile)
        raise InputError(f"{setting}={text!r} is not an execution profile ({known})") from None


def profile_for(heavy_steps: bool, environ: dict[str, str] | None = None) -> Profile:
    """The profile of a job type's runs under this deployment's settings."""
    env = os.environ if environ is None else environ
    default = parse_profile(env.get(PROFILE_ENV) or Profile.IN_PROCESS, setting=PROFILE_ENV)
    if heavy_steps and env.get(HEAVY_PROFILE_ENV):
        return parse_profile(env[HEAVY_PROFILE_ENV], setting=HEAVY_PROFILE_ENV)
    return default


def max_concurrent_steps(environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    text = env.get(MAX_CONCURRENT_STEPS_ENV)
    if not text:
        return os.cpu_count() or 1
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{MAX_CONCURRENT_STEPS_ENV}={text!r} must be a whole number >= 1")
    return value


def _env_or_default(name: str, default: str) -> dict[str, str] | str:
    # Read by Dagster when the run starts (so a password stays out of the job's snapshot).
    return {"env": name} if os.environ.get(name) else default


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
                "max_concurrent": max_concurrent_steps(),
                # A step process forks from a server that has imported the project once.
                "start_method": {"forkserver": {"preload_modules": ["jobs_pipeline.definitions"]}},
            },
            name="multiprocess_executor",
        )
    from dagster_celery import celery_executor

    return _with_orchestrator_heartbeat(celery_executor).configured(
        {
            "broker": _env_or_default(CELERY_BROKER_ENV, DEFAULT_CELERY_BROKER),
            "backend": _env_or_default(CELERY_BACKEND_ENV, DEFAULT_CELERY_BACKEND),
            # Workers listen on this queue (`scripts/celery-worker`): one per deployment.
            "config_source": {
                **CELERY_SETTINGS,
                "task_default_queue": os.environ.get(CELERY_QUEUE_ENV) or DEFAULT_CELERY_QUEUE,
            },
        },
        name="celery_executor",
    )
