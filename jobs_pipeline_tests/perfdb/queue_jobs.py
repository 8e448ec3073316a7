"""Jobs of the queue's tests, brought into a state through the state machine, with the objects,
the alarm and the parameters they use (the objects and the alarm: the `object_ids` fixture)."""

from __future__ import annotations

from typing import Any

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import Job, NewStep, Step
from jobs_pipeline.perfdb.states import JobState

ALARM_CALC = "Alarm Calculation"
OBJECTS = ("LAN-01", "LAN-02", "LAN-03")
ALARM_ID = 101

CREATED = JobState.CREATED
QUEUED = JobState.QUEUED
RUNNING = JobState.RUNNING
FINISHED = JobState.FINISHED
FAILED = JobState.FAILED


def params(**overrides: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "object_names": list(OBJECTS),
        "alarm_ids": [ALARM_ID],
        "start": "2024-01-01 00:00:00",
        "end": "2024-01-02 00:00:00",
    }
    parameters.update(overrides)
    return parameters


def new_job(perfdb: PerfDB, *, queue: bool = False, description: str = "") -> Job:
    return perfdb.queue.create_job(ALARM_CALC, params(), description=description, queue=queue)


def job_with_steps(perfdb: PerfDB, object_ids: dict[str, int], *, count: int = 3) -> list[Step]:
    job = new_job(perfdb)
    return perfdb.queue.create_steps(
        job.id,
        [NewStep(object_id=object_ids[name], alarm_id=ALARM_ID) for name in OBJECTS[:count]],
    )


def running_job(
    perfdb: PerfDB, object_ids: dict[str, int], *, run_id: str = "run-a", count: int = 3
) -> tuple[int, list[int]]:
    """A job claimed by `run_id` with `count` steps, all still Created."""
    steps = job_with_steps(perfdb, object_ids, count=count)
    job_id = steps[0].job_id
    perfdb.queue.queue_job(job_id)
    perfdb.queue.claim_job(job_id, run_id)
    return job_id, [step.id for step in steps]


def job_in_state(perfdb: PerfDB, object_ids: dict[str, int], state: JobState) -> int:
    """A job with one step, brought into `state` through the state machine."""
    if state in (CREATED, QUEUED):
        return new_job(perfdb, queue=state == QUEUED).id
    job_id, [step_id] = running_job(perfdb, object_ids, count=1, run_id=f"run-{state.label}")
    if state != RUNNING:
        perfdb.queue.start_step(step_id, f"run-{state.label}")
        perfdb.queue.finish_step(
            step_id, "boom" if state == FAILED else None, run_id=f"run-{state.label}"
        )
    assert perfdb.queue.get_job(job_id).state == state
    return job_id


def step_states(perfdb: PerfDB, job_id: int) -> list[JobState]:
    return [step.state for step in perfdb.queue.get_steps(job_id)]
