"""Which run may take which job: the policy every run (sensor-launched, `job run`, Launchpad,
re-execution from the UI) follows before it writes anything.

A run holds a job once its id is in `job_instances.run_id` and the job is Running; from then on
every write it makes is fenced by that id (see `JobQueue`).
"""

from __future__ import annotations

from jobs_pipeline.perfdb.errors import InvalidTransition
from jobs_pipeline.perfdb.queue import JobQueue
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState


def claim_for_plan(queue: JobQueue, job_id: int, run_id: str, *, is_reexecution: bool) -> Job:
    """Makes the job Running for this run, as the plan op of a run must.

    A new run claims a Queued job. A re-execution of all steps from the UI reopens a Failed or
    Finished job (Finished: every step again). A retried plan op finds the job already Running
    for this very run.
    """
    job = queue.get_job(job_id)
    if job.state == JobState.RUNNING and job.run_id == run_id:
        return job
    if job.state == JobState.QUEUED:
        return queue.claim_job(job_id, run_id)
    if is_reexecution and job.state in (JobState.FAILED, JobState.FINISHED):
        return queue.reopen_job(job_id, run_id)
    raise _refusal(job, f"run {run_id} cannot take it")


def claim_for_steps(queue: JobQueue, job_id: int, run_id: str) -> Job:
    """Before a step op runs: a re-execution "from failure" skips the plan op, so the first of
    its step ops reopens the Failed job for this run; the others find it Running already."""
    job = queue.get_job(job_id)
    if job.state == JobState.RUNNING and job.run_id == run_id:
        return job
    if job.state == JobState.FAILED:
        try:
            return queue.reopen_job(job_id, run_id)
        except InvalidTransition:
            job = queue.get_job(job_id)  # another step op of this run was first
            if job.state == JobState.RUNNING and job.run_id == run_id:
                return job
    raise _refusal(job, f"run {run_id} cannot run its steps")


def _refusal(job: Job, what: str) -> InvalidTransition:
    held = f" (held by run {job.run_id})" if job.run_id and job.state == JobState.RUNNING else ""
    return InvalidTransition(f"job {job.id} is {job.state.label}{held}: {what}")
