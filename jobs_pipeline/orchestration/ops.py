"""The run of one queued job: plan -> one mapped op per step -> summary."""
# No `from __future__ import annotations`: Dagster reads op and sensor annotations at runtime.

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import dagster as dg

from jobs_pipeline.calc import format_duration
from jobs_pipeline.jobs import JobInstance, load_job
from jobs_pipeline.jobs.step_details import SHOWN_DETAILS
from jobs_pipeline.orchestration.assets import log_run_materializations
from jobs_pipeline.orchestration.canceled_runs import stop_canceled_run
from jobs_pipeline.orchestration.console import ExpectedFailure
from jobs_pipeline.orchestration.heartbeats import keep_alive
from jobs_pipeline.orchestration.mapping_keys import mapping_key, step_id_from_mapping_key
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.summary import job_summary
from jobs_pipeline.perfdb.errors import InputError, JobCanceled, LostOwnership, is_transient
from jobs_pipeline.perfdb.ownership import claim_for_plan, claim_for_steps
from jobs_pipeline.perfdb.records import Step
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline.report.timeline import alarm_timeline_png, markdown_image

STEP_IO_MANAGER_KEY = "step_io_manager"
PLAN_OP_NAME = "plan_steps"
# The Dagster concurrency pool of the step ops: its limit (dagster.yaml, `concurrency: pools`)
# caps the steps that use the performance database at once, over all runs and workers.
PERFDB_POOL = "perfdb"

# A database that restarts or drops connections: the op is tried again after 1, 2, 4, 8, 16 s
# (about half a minute in all). Anything else, a termination included, fails the op at once:
# a `RetryPolicy` would retry every exception, and re-run a step whose run was terminated.
DATABASE_RETRIES = 5


# A step whose dependencies are still running is tried again after 0.1 s, then 1.5 times
# longer each time up to 5 s, for as long as they run (the reconciler fails steps whose run died).
DEPENDENCY_POLL_SECONDS = 0.1
DEPENDENCY_POLL_MAX = 5.0
DEPENDENCY_WAITS = 1_000_000


def _retry_delay(retry_number: int) -> float:
    return float(min(2**retry_number, 16))


class PlanConfig(dg.Config):
    """Which job of the performance database this run executes."""

    job_id: int


_HOST = socket.gethostname()

# Per process and run: the bound job (its steps and alarm definitions read once), and whether
# this run already holds the job, so that a step op costs no extra queries for either.
_BOUND: dict[tuple[str, str, int], JobInstance] = {}
_BOUND_LOCK = threading.Lock()


def _bound_job(
    perfdb_resource: PerfDBResource, run_id: str, job_id: int, instance: dg.DagsterInstance
) -> JobInstance:
    key = (perfdb_resource.resolved_url, run_id, job_id)
    with _BOUND_LOCK:
        job = _BOUND.get(key)
    if job is None:
        perfdb = perfdb_resource.get()
        claim_for_steps(perfdb.queue, job_id, run_id)
        keep_alive(perfdb, run_id, job_id, instance)
        job = load_job(perfdb, job_id)
        with _BOUND_LOCK:
            # Keep only the current run's jobs: a long-lived process runs many runs.
            for stale in [k for k in _BOUND if k[1] != run_id]:
                del _BOUND[stale]
            _BOUND[key] = job
    return job


def step_id_of_op(context: dg.OpExecutionContext) -> int:
    """The job step of a mapped step op, from its mapping key (`s12_LAN_01_1001`)."""
    key = context.get_mapping_key()
    if key is None:
        raise dg.Failure(description=f"{context.op_def.name} is not a mapped step op")
    return step_id_from_mapping_key(key)


def job_id_in_run_config(run_config: Any) -> int | None:
    """The job id from the run config of the plan op (re-executions carry the same config);
    None for a run of something else."""
    job_id = dict(run_config).get("ops", {}).get(PLAN_OP_NAME, {}).get("config", {}).get("job_id")
    return None if job_id is None else int(job_id)


def job_id_of_run(context: dg.OpExecutionContext) -> int:
    job_id = job_id_in_run_config(context.run_config)
    if job_id is None:
        raise KeyError(f"the run config has no job_id for {PLAN_OP_NAME}")
    return job_id


@contextmanager
def _op_errors(context: dg.OpExecutionContext, job_id: int) -> Iterator[None]:
    """Lost connections are retried (a `RetryRequested` after `_retry_delay`); everything else
    fails the op for good, with a message that names the job (and both runs, when the job
    changed hands)."""
    try:
        yield
    except dg.Failure:
        raise
    except LostOwnership as error:
        context.log.error(f"run {context.run_id} lost job {job_id}: {error}; nothing written")
        raise dg.Failure(description=str(error), allow_retries=False) from error
    except JobCanceled as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    except Exception as error:
        if is_transient(error):
            delay = _retry_delay(context.retry_number)
            context.log.warning(
                f"performance database unreachable, retry in {delay:.0f} s: {error}"
            )
            raise dg.RetryRequested(max_retries=DATABASE_RETRIES, seconds_to_wait=delay) from error
        raise dg.Failure(
            description=f"job {job_id}: {type(error).__name__}: {error}", allow_retries=False
        ) from error


def _runs_in(context: dg.OpExecutionContext) -> Callable[[Step], bool]:
    """Whether this run runs a step's op: every one for a run of the whole job; for a
    re-execution of some ops ("from failure"), only the selected ones."""
    selected = context.run.step_keys_to_execute
    if selected is None:
        return lambda step: True
    keys = set(selected)
    if f"{run_step.name}[?]" in keys:
        # Dagster's key for every mapped op of the step op, before the plan resolved them: the
        # executors other than in-process put it in the run of a whole job.
        return lambda step: True
    return lambda step: f"{run_step.name}[{mapping_key(step)}]" in keys


@dg.op(
    name=PLAN_OP_NAME,
    # Nothing travels from the plan to a step op but the mapping key, which holds the step id:
    # a Nothing output stores nothing (no HANDLED_OUTPUT event) and a Nothing input loads
    # nothing (no LOADED_INPUT and STEP_INPUT events), three events less per step.
    out=dg.DynamicOut(dg.Nothing),
    description="Claims the queued job, creates its steps and emits one output per step to run.",
)
def plan_steps(context: dg.OpExecutionContext, config: PlanConfig, perfdb: PerfDBResource):
    db = perfdb.get()
    run_id = context.run_id
    with _op_errors(context, config.job_id):
        is_reexecution = context.run.parent_run_id is not None
        job_record = claim_for_plan(db.queue, config.job_id, run_id, is_reexecution=is_reexecution)
        keep_alive(db, run_id, config.job_id, context.instance)
        try:
            job = load_job(db, config.job_id)
            steps = job.steps_to_run()
        except InputError as error:
            # Bad parameters or references found only now: the job fails here, with the reason.
            db.queue.fail_job(
                config.job_id,
                f"not run: {error}",
                from_states=(JobState.RUNNING,),
                who=Actor.RUN,
                run_id=run_id,
                actor=f"run:{run_id}",
            )
            raise dg.Failure(
                description=f"job {config.job_id} not run: {error}", allow_retries=False
            ) from error
        context.log.info(
            f"job {job_record.id} ({job_record.type_name}): {len(steps)} of {len(job.steps)} "
            f"steps to run"
        )
        if not steps:
            db.queue.finalise_job(config.job_id, run_id=run_id, actor=f"run:{run_id}")
    for step in steps:
        yield dg.DynamicOutput(None, mapping_key=mapping_key(step))


@dg.op(
    ins={"planned": dg.In(dg.Nothing)},
    out=dg.Out(dg.Nothing),
    pool=PERFDB_POOL,
    description="Runs one step and writes its state; fails (red) when the step failed.",
)
def run_step(context: dg.OpExecutionContext, perfdb: PerfDBResource):
    step_id = step_id_of_op(context)
    job_id = job_id_of_run(context)
    with _op_errors(context, job_id):
        job = _bound_job(perfdb, context.run_id, job_id, context.instance)
        checked = job.check_dependencies(step_id, context.run_id, reruns=_runs_in(context))
    if isinstance(checked, list) and checked:
        # Its dependencies have not Finished: the op steps aside (no process, worker or pool
        # slot held while it waits) and is tried again; Dagster's executors do not promise to
        # start mapped ops in the order the plan emitted them.
        delay = min(DEPENDENCY_POLL_SECONDS * 1.5**context.retry_number, DEPENDENCY_POLL_MAX)
        waiting = ", ".join(f"step {other.id} ({other.state.label})" for other in checked)
        context.log.debug(f"step {step_id} waits for {waiting}")
        raise dg.RetryRequested(max_retries=DEPENDENCY_WAITS, seconds_to_wait=delay)
    with _op_errors(context, job_id):
        if isinstance(checked, list):
            outcome = job.execute_step(step_id, run_id=context.run_id)
        else:
            outcome = checked  # failed without running: a step it depends on failed
    step = job.steps[step_id]
    metadata: dict[str, Any] = {
        "step_id": step_id,
        "object": step.object_name or "",
        "seconds": round(outcome.seconds, 4),
        # Where the step ran: the run worker, a step process or a Celery worker.
        "worker_host": _HOST,
        "worker_pid": os.getpid(),
    }
    if step.alarm_id is not None:
        metadata["alarm_id"] = step.alarm_id
    elif step.feature_name is not None:
        metadata["feature"] = step.feature_name
    if step.depends_on:
        metadata["depends_on"] = ", ".join(f"step {other}" for other in step.depends_on)
    for name in SHOWN_DETAILS:
        if name in outcome.details:
            metadata[name] = outcome.details[name]
    if "gap_seconds" in outcome.details:
        # People read "4 h 20 min", tools the seconds beside it.
        metadata["gap_duration"] = format_duration(
            timedelta(seconds=outcome.details["gap_seconds"])
        )
    if outcome.picture is not None:
        try:
            metadata["timeline"] = dg.MetadataValue.md(
                markdown_image(
                    # Small: a run of thousands of steps keeps its event log light.
                    alarm_timeline_png(outcome.picture, width=7.0, height=2.6, dpi=72),
                    f"step {step_id} timeline",
                )
            )
        except Exception as error:  # the step is stored; a picture is a courtesy
            context.log.warning(f"step {step_id}: no picture: {type(error).__name__}: {error}")
    if outcome.job_state is not None:
        metadata["job_state"] = outcome.job_state.label
    if outcome.job_state == JobState.FAILED:
        # This step finalised the job as Failed: a step op of this run failed, so Dagster skips
        # the summary op, and this op carries the job's outcome instead.
        with _op_errors(context, job_id):
            metadata.update(job_summary(job.perfdb, job_id, context.run_id))
            log_run_materializations(context, job.perfdb, job_id)
    if outcome.canceled and not outcome.not_run:
        # Failed, not run, by the step start that saw the cancel first: that op tells it once.
        metadata["not_run"] = outcome.canceled
        yield dg.Output(None, metadata=metadata)
        return
    if outcome.canceled:
        stop_canceled_run(context, outcome.canceled, metadata)
    if outcome.failed:
        # A reason meant for people is one line on the console; an unexpected error keeps its
        # trace (logged where it was caught) and a plain Failure.
        failure = dg.Failure if outcome.unexpected else ExpectedFailure
        raise failure(description=outcome.comment, metadata=metadata, allow_retries=False)
    # Explicit, with the step's metadata: an implicit Nothing output would log a line more.
    yield dg.Output(None, metadata=metadata)


@dg.op(
    # After every step op, reading nothing from them: the performance database has the
    # outcome, and a Nothing fan-in loads no input per step (no LOADED_INPUT event each).
    ins={"steps_done": dg.In(dg.Nothing)},
    out=dg.Out(bool, io_manager_key=STEP_IO_MANAGER_KEY),
    description="Attaches the job's outcome: steps per state, occurrences per object and alarm.",
)
def summarise_job(context: dg.OpExecutionContext, perfdb: PerfDBResource):
    db = perfdb.get()
    job_id = job_id_of_run(context)
    with _op_errors(context, job_id):
        # The last step normally finalised the job already; a re-execution of only some of the
        # failed steps leaves the others Failed, and the job is final now that the run is done.
        job = db.queue.finalise_job(
            job_id, run_id=context.run_id, run_ended=True, actor=f"run:{context.run_id}"
        )
        context.add_output_metadata(job_summary(db, job_id, context.run_id))
        log_run_materializations(context, db, job_id)
    return job.state == JobState.FINISHED


@dg.graph(description="Runs one job of the performance database, one op per job step.")
def perfdb_job_graph():
    summarise_job(plan_steps().map(run_step).collect())
