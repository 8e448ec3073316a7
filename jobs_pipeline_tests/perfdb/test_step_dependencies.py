"""Dependent steps through the database's rules, on both backends: a step waits for the steps
it depends on, and a failed step fails its dependents in the same transaction, the triggers
writing their history rows and timestamps."""

from __future__ import annotations

import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import DependencyNotFinished
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.perfdb.queue_jobs import (
    ALARM_ID,
    OBJECTS,
    new_job,
)


def chained_job(perfdb: PerfDB, ids: dict[str, int]) -> tuple[int, list[int]]:
    """Claimed by run-a: step 1 depends on step 0, step 2 on step 1, step 3 on nothing."""
    job = new_job(perfdb)
    steps = perfdb.queue.create_steps(
        job.id,
        [
            NewStep(object_id=ids[OBJECTS[0]], alarm_id=ALARM_ID),
            NewStep(object_id=ids[OBJECTS[1]], alarm_id=ALARM_ID, depends_on=(0,)),
            NewStep(object_id=ids[OBJECTS[2]], alarm_id=ALARM_ID, depends_on=(1,)),
            NewStep(object_id=None),
        ],
    )
    perfdb.queue.queue_job(job.id)
    perfdb.queue.claim_job(job.id, "run-a")
    return job.id, [step.id for step in steps]


def test_a_step_does_not_start_before_its_dependencies_finished(
    perfdb: PerfDB,
    object_ids: dict[str, int],
) -> None:
    job_id, (first, second, _, _) = chained_job(perfdb, object_ids)
    assert perfdb.queue.get_step(second).depends_on == (first,)
    history = len(perfdb.queue.history(job_id))
    with pytest.raises(DependencyNotFinished, match=rf"step {first} is Created"):
        perfdb.queue.start_step(second, "run-a")
    refused = perfdb.queue.get_step(second)
    assert (refused.state, refused.attempts, refused.started) == (JobState.CREATED, 0, None)
    assert len(perfdb.queue.history(job_id)) == history  # the refused move left no trace
    perfdb.queue.start_step(first, "run-a")
    perfdb.queue.finish_step(first, run_id="run-a")
    started = perfdb.queue.start_step(second, "run-a")
    assert (started.state, started.depends_on, started.attempts) == (
        JobState.RUNNING,
        (first,),
        1,
    )


def test_a_failed_step_fails_its_dependents_through_the_rules_and_the_job_ends(
    perfdb: PerfDB,
    object_ids: dict[str, int],
) -> None:
    job_id, (first, second, third, alone) = chained_job(perfdb, object_ids)
    perfdb.queue.start_step(alone, "run-a")
    perfdb.queue.finish_step(alone, run_id="run-a")
    perfdb.queue.start_step(first, "run-a")
    result = perfdb.queue.finish_step(first, "broken input", run_id="run-a")
    assert result.not_run == (second, third)
    assert result.job_state == JobState.FAILED
    steps = {step.id: step for step in perfdb.queue.get_steps(job_id)}
    assert steps[second].comment == (
        f"not run: depends on step {first} ({OBJECTS[0]} alarm {ALARM_ID}), which failed"
    )
    assert steps[third].comment.startswith(f"not run: depends on step {second} ")
    for step_id in (second, third):
        assert steps[step_id].state == JobState.FAILED
        assert steps[step_id].attempts == 0
        assert steps[step_id].finished is not None  # stamped by the database
    history = [
        (entry.step_id, entry.from_state, entry.to_state, entry.actor)
        for entry in perfdb.queue.history(job_id)
        if entry.step_id in (second, third)
    ]
    assert history[-2:] == [
        (second, JobState.CREATED, JobState.FAILED, "run:run-a"),
        (third, JobState.CREATED, JobState.FAILED, "run:run-a"),
    ]


def test_dependencies_name_earlier_positions_only(perfdb: PerfDB) -> None:
    job = new_job(perfdb)
    with pytest.raises(ValueError, match="may depend only on steps before it"):
        perfdb.queue.create_steps(
            job.id, [NewStep(object_id=None, depends_on=(1,)), NewStep(object_id=None)]
        )
    assert perfdb.queue.get_steps(job.id) == []
