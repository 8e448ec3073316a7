"""How a Dagster run takes hold of a queued job: the state rules, without Dagster types."""

from __future__ import annotations

import re

from jobs_pipeline.jobs import JobInstance
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidTransition
from jobs_pipeline.perfdb.records import Job, Step
from jobs_pipeline.perfdb.states import JobState

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
_STEP_KEY = re.compile(r"^s(\d+)(?:_|$)")


def mapping_key(step: Step) -> str:
    """Readable, unique and Dagster-safe: `s12_LAN_01_1001` for step 12, LAN-01, alarm 1001."""
    parts = [f"s{step.id}", step.object_name]
    if step.alarm_id is not None:
        parts.append(str(step.alarm_id))
    return _UNSAFE.sub("_", "_".join(parts)).strip("_")


def step_id_from_mapping_key(key: str) -> int:
    match = _STEP_KEY.match(key)
    if match is None:
        raise ValueError(f"mapping key {key!r} does not start with a step id (s<id>_...)")
    return int(match.group(1))


def take_job(perfdb: PerfDB, job_id: int, run_id: str, *, is_reexecution: bool) -> Job:
    """Makes the job Running for this run, as the plan op of a run must.

    A new run claims a Queued job. A re-execution of all steps from the UI reopens a Failed or
    Finished job (Finished: every step again). A retried plan op finds the job already Running
    for this very run.
    """
    job = perfdb.queue.get_job(job_id)
    if job.state == JobState.RUNNING and job.run_id == run_id:
        return job
    if job.state == JobState.QUEUED:
        return perfdb.queue.claim_job(job_id, run_id)
    if is_reexecution and job.state in (JobState.FAILED, JobState.FINISHED):
        return perfdb.queue.reopen_job(job_id, run_id)
    raise _refusal(job, "this run cannot take it")


def hold_job_for_steps(perfdb: PerfDB, job_id: int, run_id: str) -> None:
    """Before a step op runs: a re-execution "from failure" skips the plan op, so the first of
    its step ops reopens the Failed job for this run; the others find it Running already."""
    job = perfdb.queue.get_job(job_id)
    if job.state == JobState.RUNNING and job.run_id == run_id:
        return
    if job.state == JobState.FAILED:
        try:
            perfdb.queue.reopen_job(job_id, run_id)
            return
        except InvalidTransition:
            job = perfdb.queue.get_job(job_id)  # another step op of this run was first
            if job.state == JobState.RUNNING and job.run_id == run_id:
                return
    raise _refusal(job, f"run {run_id} cannot run its steps")


def steps_to_run(job: JobInstance) -> list[Step]:
    """Creates the job's steps if needed and returns those not Finished, in order. `job` must
    be freshly loaded (after the run took it), so that its steps' states are current."""
    return [step for step in job.create_steps() if step.state != JobState.FINISHED]


def _refusal(job: Job, what: str) -> InvalidTransition:
    held = f" (run {job.run_id})" if job.run_id else ""
    return InvalidTransition(f"job {job.id} is {job.state.label}{held}: {what}")
