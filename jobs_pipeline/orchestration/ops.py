"""The run of one queued job: plan -> one mapped op per step -> summary."""
# No `from __future__ import annotations`: Dagster reads op and sensor annotations at runtime.

import threading
from collections import Counter
from typing import Any

import dagster as dg

from jobs_pipeline.jobs import JobInstance, load_job
from jobs_pipeline.jobs.step_details import SHOWN_DETAILS
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.run_state import (
    hold_job_for_steps,
    mapping_key,
    steps_to_run,
    take_job,
)
from jobs_pipeline.perfdb.errors import InputError
from jobs_pipeline.perfdb.states import JobState

STEP_IO_MANAGER_KEY = "step_io_manager"
PLAN_OP_NAME = "plan_steps"


class PlanConfig(dg.Config):
    """Which job of the performance database this run executes."""

    job_id: int


# Per process and run: the bound job (its steps and alarm definitions read once), and whether
# this run already holds the job, so that a step op costs no extra queries for either.
_BOUND: dict[tuple[str, str, int], JobInstance] = {}
_BOUND_LOCK = threading.Lock()


def _bound_job(perfdb_resource: PerfDBResource, run_id: str, job_id: int) -> JobInstance:
    key = (perfdb_resource.resolved_url, run_id, job_id)
    with _BOUND_LOCK:
        job = _BOUND.get(key)
    if job is None:
        perfdb = perfdb_resource.get()
        hold_job_for_steps(perfdb, job_id, run_id)
        job = load_job(perfdb, job_id)
        with _BOUND_LOCK:
            # Keep only the current run's jobs: a long-lived process runs many runs.
            for stale in [k for k in _BOUND if k[1] != run_id]:
                del _BOUND[stale]
            _BOUND[key] = job
    return job


def job_id_of_run(context: dg.OpExecutionContext) -> int:
    """The job id from the run config of the plan op (re-executions carry the same config)."""
    run_config: dict[str, Any] = dict(context.run_config)
    return int(run_config["ops"][PLAN_OP_NAME]["config"]["job_id"])


@dg.op(
    name=PLAN_OP_NAME,
    out=dg.DynamicOut(int, io_manager_key=STEP_IO_MANAGER_KEY),
    description="Claims the queued job, creates its steps and emits one output per step to run.",
)
def plan_steps(context: dg.OpExecutionContext, config: PlanConfig, perfdb: PerfDBResource):
    db = perfdb.get()
    is_reexecution = context.run.parent_run_id is not None
    job_record = take_job(db, config.job_id, context.run_id, is_reexecution=is_reexecution)
    try:
        job = load_job(db, config.job_id)
        steps = steps_to_run(job)
    except InputError as error:
        # Bad parameters or references found only now: the job fails here, with the reason.
        db.queue.fail_job(
            config.job_id,
            f"not run: {error}",
            from_states=(JobState.RUNNING,),
            actor=f"run:{context.run_id}",
        )
        raise dg.Failure(description=f"job {config.job_id} not run: {error}") from error
    context.log.info(
        f"job {job_record.id} ({job_record.type_name}): {len(steps)} of {len(job.steps)} steps "
        f"to run"
    )
    if not steps:
        db.queue.finalise_job(config.job_id, actor=f"run:{context.run_id}")
    for step in steps:
        yield dg.DynamicOutput(step.id, mapping_key=mapping_key(step))


@dg.op(
    out=dg.Out(int, io_manager_key=STEP_IO_MANAGER_KEY),
    description="Runs one step and writes its state; fails (red) when the step failed.",
)
def run_step(context: dg.OpExecutionContext, perfdb: PerfDBResource, step_id: int):
    job = _bound_job(perfdb, context.run_id, job_id_of_run(context))
    outcome = job.execute_step(step_id, run_id=context.run_id)
    step = job.steps[step_id]
    metadata: dict[str, Any] = {
        "step_id": step_id,
        "object": step.object_name,
        "seconds": round(outcome.seconds, 4),
    }
    if step.alarm_id is not None:
        metadata["alarm_id"] = step.alarm_id
    for name in SHOWN_DETAILS:
        if name in outcome.details:
            metadata[name] = outcome.details[name]
    if outcome.job_state is not None:
        metadata["job_state"] = outcome.job_state.label
    if outcome.failed:
        raise dg.Failure(description=outcome.comment, metadata=metadata, allow_retries=False)
    yield dg.Output(step_id, metadata=metadata)


@dg.op(
    ins={"step_ids": dg.In(list[int])},
    out=dg.Out(bool, io_manager_key=STEP_IO_MANAGER_KEY),
    description="Attaches the job's outcome: steps per state, occurrences per object and alarm.",
)
def summarise_job(context: dg.OpExecutionContext, perfdb: PerfDBResource, step_ids: list[int]):
    db = perfdb.get()
    job_id = job_id_of_run(context)
    # The last step normally finalised the job already; a re-execution of only some of the
    # failed steps leaves the others Failed, and the job is final now that the run is done.
    job = db.queue.finalise_job(job_id, run_id=context.run_id, actor=f"run:{context.run_id}")
    states = Counter(step.state.label for step in db.queue.get_steps(job_id))
    table = db.occurrences.counts_by_job(job_id)
    lines = ["| object | alarm | occurrences |", "| --- | --- | ---: |"]
    lines += [f"| {obj} | {alarm} | {count} |" for obj, alarm, count in table]
    context.add_output_metadata(
        {
            "job_id": job_id,
            "job_state": job.state.label,
            "steps_this_run": len(step_ids),
            **{f"steps_{state.lower()}": count for state, count in sorted(states.items())},
            "occurrences": dg.MetadataValue.md("\n".join(lines)),
        }
    )
    return job.state == JobState.FINISHED


@dg.graph(description="Runs one job of the performance database, one op per job step.")
def perfdb_job_graph():
    summarise_job(plan_steps().map(run_step).collect())
