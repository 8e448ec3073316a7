"""The job queue state machine: transitions, guards, history, finalisation and reconciliation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from jobs_pipeline.jobs import create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import (
    InputError,
    InvalidParameters,
    InvalidTransition,
    LostOwnership,
    NotFound,
)
from jobs_pipeline.perfdb.queue import JobQueue
from jobs_pipeline.perfdb.records import Job, NewStep
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.perfdb.queue_jobs import (
    ALARM_CALC,
    ALARM_ID,
    CREATED,
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    job_in_state,
    job_with_steps,
    new_job,
    params,
    running_job,
    step_states,
)


def transitions(perfdb: PerfDB, job_id: int) -> list[tuple[int | None, JobState | None, JobState]]:
    return [
        (entry.step_id, entry.from_state, entry.to_state) for entry in perfdb.queue.history(job_id)
    ]


def job_transitions(perfdb: PerfDB, job_id: int) -> list[tuple[JobState | None, JobState]]:
    return [(f, t) for step_id, f, t in transitions(perfdb, job_id) if step_id is None]


def table_count(perfdb: PerfDB, table: str) -> int:
    with perfdb.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# --- create, get, list -----------------------------------------------------------------------


def test_create_job_is_created_with_its_parameters_and_one_history_row(perfdb: PerfDB) -> None:
    before = datetime.now(UTC)
    job = perfdb.queue.create_job(ALARM_CALC, params(), description="nightly", actor="tester")

    assert job.state == CREATED
    assert job.type_name == ALARM_CALC
    assert job.parameters == params()
    assert job.description == "nightly"
    assert job.comment is None
    assert job.queue_count == 0
    assert job.started is None and job.finished is None and job.run_id is None
    assert before <= job.created <= datetime.now(UTC)
    assert job.created.utcoffset() is not None
    assert job.last_state_change == job.created
    assert perfdb.queue.get_job(job.id) == job
    [entry] = perfdb.queue.history(job.id)
    assert (entry.from_state, entry.to_state, entry.actor) == (None, CREATED, "user:tester")


def test_create_job_with_queue_is_queued_in_the_same_call(perfdb: PerfDB) -> None:
    job = new_job(perfdb, queue=True)

    assert job.state == QUEUED
    assert job.queue_count == 1
    assert job_transitions(perfdb, job.id) == [(None, CREATED), (CREATED, QUEUED)]


SCHEMA_FAILURES: dict[str, tuple[Any, str]] = {
    "missing key": ({k: v for k, v in params().items() if k != "end"}, "'end'"),
    "wrong type": (params(start=20240101), "parameter 'start'"),
    "wrong item type": (params(alarm_ids=["101"]), "parameter 'alarm_ids[0]'"),
    "empty list": (params(object_names=[]), "parameter 'object_names'"),
    "unknown key": (params(colour="red"), "'colour' was unexpected"),
    "not an object": ([1, 2], "not of type 'object'"),
}


def test_create_job_rejects_parameters_failing_the_schema_naming_the_field(
    perfdb: PerfDB,
) -> None:
    for case, (parameters, named) in SCHEMA_FAILURES.items():
        with pytest.raises(InvalidParameters) as info:
            perfdb.queue.create_job(ALARM_CALC, parameters)
        message = str(info.value)
        assert message.startswith("invalid parameters for 'Alarm Calculation': "), case
        assert named in message, (case, message)

    assert perfdb.queue.list_jobs() == []
    assert table_count(perfdb, "job_state_history") == 0


def test_create_job_of_unknown_type_lists_the_known_types(perfdb: PerfDB) -> None:
    known = r"\(known: 'Alarm Calculation', 'Data Import', 'Feature Calculation'\)"
    with pytest.raises(NotFound, match=rf"unknown job type 'Nope' {known}"):
        perfdb.queue.create_job("Nope", {})
    assert perfdb.queue.list_jobs() == []


def test_registry_create_job_checks_references_and_period(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    with pytest.raises(NotFound, match="unknown object names: 'LAN-99', 'ghost'"):
        create_job(perfdb, ALARM_CALC, params(object_names=["LAN-01", "LAN-99", "ghost"]))
    with pytest.raises(NotFound, match="unknown alarm ids: 7, 8"):
        create_job(perfdb, ALARM_CALC, params(alarm_ids=[ALARM_ID, 7, 8]))
    with pytest.raises(InvalidParameters, match="start must be before end"):
        create_job(perfdb, ALARM_CALC, params(start="2024-01-02", end="2024-01-01"))
    with pytest.raises(InvalidParameters, match="parameter 'end': malformed date '2024-13-01'"):
        create_job(perfdb, ALARM_CALC, params(end="2024-13-01"))
    assert perfdb.queue.list_jobs() == []

    job = create_job(perfdb, ALARM_CALC, params(start="2024-01-01T00:00:00+01:00"))
    assert job.state == CREATED


def test_get_job_of_unknown_id_is_not_found(perfdb: PerfDB) -> None:
    with pytest.raises(NotFound, match="job 4242 does not exist"):
        perfdb.queue.get_job(4242)


def test_list_jobs_filters_by_state_and_type_in_id_order(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    created = new_job(perfdb)
    queued = [new_job(perfdb, queue=True) for _ in range(3)]
    perfdb.queue.claim_job(queued[1].id, "run-x")

    def ids(jobs: list[Job]) -> list[int]:
        return [job.id for job in jobs]

    assert ids(perfdb.queue.list_jobs()) == [created.id] + [job.id for job in queued]
    assert ids(perfdb.queue.list_jobs(state=QUEUED)) == [queued[0].id, queued[2].id]
    assert ids(perfdb.queue.list_jobs(state=RUNNING)) == [queued[1].id]
    assert perfdb.queue.list_jobs(state=FAILED) == []
    assert len(perfdb.queue.list_jobs(type_name=ALARM_CALC)) == 4
    assert perfdb.queue.list_jobs(type_name="Something Else") == []
    assert ids(perfdb.queue.list_jobs(state=QUEUED, after_id=queued[0].id, limit=5)) == [
        queued[2].id
    ]
    assert ids(perfdb.queue.list_jobs(limit=2)) == [created.id, queued[0].id]


# --- update and delete -----------------------------------------------------------------------


def test_update_changes_parameters_and_description_while_created(perfdb: PerfDB) -> None:
    job = new_job(perfdb, description="old")
    changed = params(end="2024-01-03 00:00:00")

    updated = perfdb.queue.update_job(job.id, parameters=changed)
    assert updated.parameters == changed and updated.description == "old"
    updated = perfdb.queue.update_job(job.id, description="new")
    assert updated.parameters == changed and updated.description == "new"
    assert updated.state == CREATED
    assert perfdb.queue.get_job(job.id) == updated


def test_update_rejects_invalid_parameters_and_leaves_the_job_alone(perfdb: PerfDB) -> None:
    job = new_job(perfdb)

    with pytest.raises(InvalidParameters, match="'start'"):
        perfdb.queue.update_job(job.id, parameters=params(start=1), description="changed")
    with pytest.raises(InputError, match="nothing to update"):
        perfdb.queue.update_job(job.id)
    assert perfdb.queue.get_job(job.id) == job


def test_update_is_refused_once_the_job_left_created(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    for state in (QUEUED, RUNNING, FAILED, FINISHED):
        job_id = job_in_state(perfdb, object_ids, state)
        before = perfdb.queue.get_job(job_id)
        with pytest.raises(
            InvalidTransition, match=f"job {job_id} is {state.label}, expected Created$"
        ):
            perfdb.queue.update_job(job_id, description="too late")
        assert perfdb.queue.get_job(job_id) == before


def test_delete_removes_a_job_that_is_not_running_with_steps_and_history(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    jobs = {state: job_in_state(perfdb, object_ids, state) for state in JobState}

    for state in (CREATED, QUEUED, FAILED, FINISHED):
        perfdb.queue.delete_job(jobs[state])
        with pytest.raises(NotFound):
            perfdb.queue.get_job(jobs[state])
        assert perfdb.queue.get_steps(jobs[state]) == []
        assert perfdb.queue.history(jobs[state]) == []

    assert [job.id for job in perfdb.queue.list_jobs()] == [jobs[RUNNING]]
    assert table_count(perfdb, "job_steps") == 1
    assert {entry.job_id for entry in perfdb.queue.history(jobs[RUNNING])} == {jobs[RUNNING]}
    assert table_count(perfdb, "job_state_history") == len(perfdb.queue.history(jobs[RUNNING]))


def test_delete_refuses_a_running_job_and_an_unknown_one(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, step_ids = running_job(perfdb, object_ids)
    history = transitions(perfdb, job_id)

    with pytest.raises(InvalidTransition, match=f"job {job_id} is Running"):
        perfdb.queue.delete_job(job_id)
    with pytest.raises(NotFound, match="job 9999 does not exist"):
        perfdb.queue.delete_job(9999)

    assert perfdb.queue.get_job(job_id).state == RUNNING
    assert [step.id for step in perfdb.queue.get_steps(job_id)] == step_ids
    assert transitions(perfdb, job_id) == history


# --- transitions and their guards ------------------------------------------------------------


def test_a_job_runs_through_every_state_with_one_history_row_per_transition(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    steps = job_with_steps(perfdb, object_ids, count=2)
    job_id = steps[0].job_id
    assert [step.position for step in steps] == [0, 1]
    assert [step.object_name for step in steps] == ["LAN-01", "LAN-02"]
    assert step_states(perfdb, job_id) == [CREATED, CREATED]

    queued = perfdb.queue.queue_job(job_id, actor="cli")
    assert (queued.state, queued.queue_count) == (QUEUED, 1)

    claimed = perfdb.queue.claim_job(job_id, "run-a")
    assert (claimed.state, claimed.run_id) == (RUNNING, "run-a")
    assert claimed.started is not None and claimed.finished is None

    first = perfdb.queue.start_step(steps[0].id, "run-a")
    assert (first.state, first.attempts, first.run_id) == (RUNNING, 1, "run-a")
    result = perfdb.queue.finish_step(steps[0].id, run_id="run-a")
    assert (result.state, result.job_state) == (FINISHED, None)
    assert perfdb.queue.get_job(job_id).state == RUNNING

    perfdb.queue.start_step(steps[1].id, "run-a")
    result = perfdb.queue.finish_step(steps[1].id, run_id="run-a")
    assert (result.state, result.job_state, result.job_comment) == (FINISHED, FINISHED, None)

    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.comment) == (FINISHED, None)
    assert job.started is not None and job.finished is not None
    assert job.finished >= job.started
    assert job.last_state_change == job.finished
    assert step_states(perfdb, job_id) == [FINISHED, FINISHED]

    history = perfdb.queue.history(job_id)
    s0, s1 = steps[0].id, steps[1].id
    assert [(e.step_id, e.from_state, e.to_state) for e in history] == [
        (None, None, CREATED),
        (s0, None, CREATED),
        (s1, None, CREATED),
        (None, CREATED, QUEUED),
        (None, QUEUED, RUNNING),
        (s0, CREATED, RUNNING),
        (s0, RUNNING, FINISHED),
        (s1, CREATED, RUNNING),
        (s1, RUNNING, FINISHED),
        (None, RUNNING, FINISHED),
    ]
    assert history[3].actor == "user:cli"
    assert {e.actor for e in history[4:]} == {"run:run-a"}
    # The job's final state is written with its last step's, in one transaction: the same
    # database time on PostgreSQL (`now()` is the transaction's), the next statement's on SQLite.
    gap = history[-1].changed_at - history[-2].changed_at
    assert timedelta(0) <= gap < timedelta(seconds=1)
    if perfdb.engine.dialect.name == "postgresql":
        assert gap == timedelta(0)


def test_failed_steps_fail_the_job_with_the_seed_comment(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, step_ids = running_job(perfdb, object_ids)
    for step_id in step_ids:
        perfdb.queue.start_step(step_id, "run-a")

    perfdb.queue.finish_step(step_ids[0], "no data for LAN-01", run_id="run-a")
    assert perfdb.queue.get_job(job_id).state == RUNNING
    perfdb.queue.finish_step(step_ids[1], run_id="run-a")
    result = perfdb.queue.finish_step(step_ids[2], run_id="run-a")

    assert (result.state, result.job_state) == (FINISHED, FAILED)
    assert result.job_comment == "1 (33.33%) steps failed"
    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.comment) == (FAILED, "1 (33.33%) steps failed")
    steps = perfdb.queue.get_steps(job_id)
    assert [(s.state, s.comment) for s in steps] == [
        (FAILED, "no data for LAN-01"),
        (FINISHED, None),
        (FINISHED, None),
    ]
    history = perfdb.queue.history(job_id)
    assert (history[-4].step_id, history[-4].comment) == (step_ids[0], "no data for LAN-01")
    assert history[-1].comment == "1 (33.33%) steps failed"


def test_all_steps_failing_gives_one_hundred_percent(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, step_ids = running_job(perfdb, object_ids, count=2)
    for step_id in step_ids:
        perfdb.queue.start_step(step_id, "run-a")
        perfdb.queue.finish_step(step_id, "boom", run_id="run-a")
    assert perfdb.queue.get_job(job_id).comment == "2 (100.00%) steps failed"


def test_finishing_the_last_step_and_the_job_is_one_transaction(
    perfdb: PerfDB, object_ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, [step_id] = running_job(perfdb, object_ids, count=1)
    perfdb.queue.start_step(step_id, "run-a")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("crash while finalising")

    monkeypatch.setattr(JobQueue, "_finalise_job", broken)
    with pytest.raises(RuntimeError, match="crash while finalising"):
        perfdb.queue.finish_step(step_id, run_id="run-a")

    # Neither the step nor the job moved: no half-finished job is left behind.
    assert perfdb.queue.get_step(step_id).state == RUNNING
    assert perfdb.queue.get_job(job_id).state == RUNNING
    monkeypatch.undo()
    assert perfdb.queue.finish_step(step_id, run_id="run-a").job_state == FINISHED


def test_queue_refuses_a_job_that_is_queued_or_running(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    for state in (QUEUED, RUNNING):
        job_id = job_in_state(perfdb, object_ids, state)
        before = perfdb.queue.get_job(job_id)
        history = transitions(perfdb, job_id)
        with pytest.raises(
            InvalidTransition,
            match=f"job {job_id} is {state.label}, expected Created, Failed, Finished",
        ):
            perfdb.queue.queue_job(job_id)
        assert perfdb.queue.get_job(job_id) == before
        assert transitions(perfdb, job_id) == history


def test_claim_is_guarded_by_the_current_state(perfdb: PerfDB) -> None:
    job = new_job(perfdb)
    with pytest.raises(InvalidTransition, match=f"job {job.id} is Created, expected Queued"):
        perfdb.queue.claim_job(job.id, "run-a")

    perfdb.queue.queue_job(job.id)
    perfdb.queue.claim_job(job.id, "run-a")
    with pytest.raises(InvalidTransition, match=f"job {job.id} is Running, expected Queued"):
        perfdb.queue.claim_job(job.id, "run-b")
    with pytest.raises(
        InvalidTransition, match=f"job {job.id} is Running, expected Failed, Finished"
    ):
        perfdb.queue.reopen_job(job.id, "run-b")
    with pytest.raises(InvalidTransition, match=f"job {job.id} is Running, expected Queued"):
        perfdb.queue.fail_job(job.id, "bad row")
    with pytest.raises(NotFound, match="job 777 does not exist"):
        perfdb.queue.claim_job(777, "run-a")

    job_after = perfdb.queue.get_job(job.id)
    assert (job_after.state, job_after.run_id, job_after.comment) == (RUNNING, "run-a", None)
    assert job_transitions(perfdb, job.id) == [
        (None, CREATED),
        (CREATED, QUEUED),
        (QUEUED, RUNNING),
    ]


def test_step_transitions_are_guarded_by_the_current_state(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [first, second] = running_job(perfdb, object_ids, count=2)

    with pytest.raises(InvalidTransition, match=f"step {first} is Created, expected Running"):
        perfdb.queue.finish_step(first, run_id="run-a")
    perfdb.queue.start_step(first, "run-a")
    # Another run cannot touch the steps of a job that run-a holds.
    with pytest.raises(LostOwnership, match=f"job {job_id} is Running and held by run run-a"):
        perfdb.queue.start_step(first, "run-b")
    with pytest.raises(LostOwnership, match="run run-b no longer holds it"):
        perfdb.queue.finish_step(first, run_id="run-b")
    perfdb.queue.finish_step(first, run_id="run-a")
    with pytest.raises(
        InvalidTransition, match=f"step {first} is Finished, expected Created, Failed, Running"
    ):
        perfdb.queue.start_step(first, "run-a")
    with pytest.raises(InvalidTransition, match=f"step {first} is Finished, expected Running"):
        perfdb.queue.finish_step(first, "late error", run_id="run-a")
    with pytest.raises(NotFound, match="step 98765 does not exist"):
        perfdb.queue.start_step(98765, "run-a")
    with pytest.raises(NotFound, match="step 98765 does not exist"):
        perfdb.queue.finish_step(98765, run_id="run-a")

    step = perfdb.queue.get_step(first)
    assert (step.state, step.comment, step.attempts, step.run_id) == (FINISHED, None, 1, "run-a")
    assert perfdb.queue.get_step(second).state == CREATED
    assert perfdb.queue.get_job(job_id).state == RUNNING


def test_create_steps_happens_once(perfdb: PerfDB, object_ids: dict[str, int]) -> None:
    steps = job_with_steps(perfdb, object_ids, count=2)
    job_id = steps[0].job_id

    again = perfdb.queue.create_steps(job_id, [NewStep(object_id=object_ids["LAN-03"])])

    assert again == steps
    assert table_count(perfdb, "job_steps") == 2
    with pytest.raises(NotFound, match="job 5555 does not exist"):
        perfdb.queue.create_steps(5555, [NewStep(object_id=object_ids["LAN-01"])])


# --- requeue ---------------------------------------------------------------------------------


def test_requeue_failed_job_keeps_finished_steps_and_reruns_the_failed_ones(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [ok, bad] = running_job(perfdb, object_ids, count=2)
    for step_id, error in ((ok, None), (bad, "boom")):
        perfdb.queue.start_step(step_id, "run-a")
        perfdb.queue.finish_step(step_id, error, run_id="run-a")
    assert perfdb.queue.get_job(job_id).state == FAILED

    requeued = perfdb.queue.queue_job(job_id)

    assert (requeued.state, requeued.queue_count) == (QUEUED, 2)
    assert requeued.comment is None and requeued.finished is None
    assert step_states(perfdb, job_id) == [FINISHED, FAILED]

    perfdb.queue.claim_job(job_id, "run-b")
    rerun = perfdb.queue.start_step(bad, "run-b")
    assert (rerun.state, rerun.attempts, rerun.comment, rerun.run_id) == (
        RUNNING,
        2,
        None,
        "run-b",
    )
    result = perfdb.queue.finish_step(bad, run_id="run-b")
    assert result.job_state == FINISHED
    assert perfdb.queue.get_job(job_id).state == FINISHED
    assert (None, FAILED, QUEUED) in transitions(perfdb, job_id)
    assert (bad, FAILED, RUNNING) in transitions(perfdb, job_id)


def test_requeue_finished_job_resets_every_step_to_created(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, step_ids = running_job(perfdb, object_ids, count=2)
    for step_id in step_ids:
        perfdb.queue.start_step(step_id, "run-a")
        perfdb.queue.finish_step(step_id, run_id="run-a")
    assert perfdb.queue.get_job(job_id).state == FINISHED

    requeued = perfdb.queue.queue_job(job_id, actor="ops")

    assert (requeued.state, requeued.queue_count) == (QUEUED, 2)
    assert step_states(perfdb, job_id) == [CREATED, CREATED]
    resets = [e for e in perfdb.queue.history(job_id) if e.step_id and e.to_state == CREATED][2:]
    assert [(e.step_id, e.from_state, e.actor) for e in resets] == [
        (step_ids[0], FINISHED, "user:ops"),
        (step_ids[1], FINISHED, "user:ops"),
    ]
    assert job_transitions(perfdb, job_id)[-1] == (FINISHED, QUEUED)

    third = perfdb.queue.claim_job(job_id, "run-b")
    assert third.run_id == "run-b"
    for step_id in step_ids:
        assert perfdb.queue.start_step(step_id, "run-b").attempts == 2


# --- reconciliation of a dead run --------------------------------------------------------------


def test_dead_run_fails_its_running_steps_and_finalises_the_job(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [done, busy, waiting] = running_job(perfdb, object_ids)
    perfdb.queue.start_step(done, "run-a")
    perfdb.queue.finish_step(done, run_id="run-a")
    perfdb.queue.start_step(busy, "run-a")

    results = perfdb.queue.fail_running_steps_of_run("run-a", "run run-a was killed")

    assert [(r.step_id, r.job_id, r.state) for r in results] == [(busy, job_id, FAILED)]
    expected_comment = "run run-a was killed; 1 (33.33%) steps failed, 1 not run"
    assert (results[0].job_state, results[0].job_comment) == (FAILED, expected_comment)
    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.comment) == (FAILED, expected_comment)
    assert job.finished is not None
    busy_step = perfdb.queue.get_step(busy)
    assert (busy_step.state, busy_step.comment) == (FAILED, "run run-a was killed")
    assert step_states(perfdb, job_id) == [FINISHED, FAILED, CREATED]
    assert perfdb.queue.get_step(waiting).comment is None

    # Idempotent: a second report of the same death changes nothing.
    history = perfdb.queue.history(job_id)
    assert perfdb.queue.fail_running_steps_of_run("run-a", "run run-a was killed") == []
    assert perfdb.queue.history(job_id) == history
    assert perfdb.queue.get_job(job_id) == job


def test_dead_run_without_running_steps_still_fails_its_job(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, _ = running_job(perfdb, object_ids, count=2)

    results = perfdb.queue.fail_running_steps_of_run("run-a", "cancelled")

    assert [(r.job_id, r.job_state) for r in results] == [(job_id, FAILED)]
    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.comment) == (FAILED, "cancelled; 2 of 2 steps not run")
    assert job_transitions(perfdb, job_id)[-1] == (RUNNING, FAILED)


def test_reconciliation_only_touches_the_dead_run(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    dead_job, [dead_step, _] = running_job(perfdb, object_ids, run_id="run-a", count=2)
    live_job, [live_step, _] = running_job(perfdb, object_ids, run_id="run-b", count=2)
    perfdb.queue.start_step(dead_step, "run-a")
    perfdb.queue.start_step(live_step, "run-b")
    live_history = perfdb.queue.history(live_job)

    perfdb.queue.fail_running_steps_of_run("run-a", "run-a crashed")

    assert perfdb.queue.get_job(dead_job).state == FAILED
    assert perfdb.queue.get_job(live_job).state == RUNNING
    assert perfdb.queue.get_step(live_step).state == RUNNING
    assert perfdb.queue.history(live_job) == live_history
    assert perfdb.queue.fail_running_steps_of_run("run-unknown", "nothing") == []


def test_late_reconciliation_leaves_a_newer_run_alone(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [first, second] = running_job(perfdb, object_ids, run_id="run-a", count=2)
    perfdb.queue.start_step(first, "run-a")
    perfdb.queue.fail_running_steps_of_run("run-a", "run-a died")
    assert perfdb.queue.get_job(job_id).state == FAILED

    # A requeue hands the job to run-b, which re-runs the failed step.
    perfdb.queue.queue_job(job_id)
    perfdb.queue.claim_job(job_id, "run-b")
    perfdb.queue.start_step(first, "run-b")
    history = perfdb.queue.history(job_id)

    assert perfdb.queue.fail_running_steps_of_run("run-a", "run-a died (late event)") == []

    assert perfdb.queue.history(job_id) == history
    assert perfdb.queue.get_job(job_id).state == RUNNING
    assert perfdb.queue.get_step(first).state == RUNNING
    assert perfdb.queue.get_step(first).run_id == "run-b"

    # A re-execution from the UI (Failed -> Running) is protected the same way.
    perfdb.queue.finish_step(first, "boom", run_id="run-b")
    perfdb.queue.start_step(second, "run-b")
    perfdb.queue.finish_step(second, run_id="run-b")
    assert perfdb.queue.get_job(job_id).state == FAILED
    reopened = perfdb.queue.reopen_job(job_id, "run-c")
    assert (reopened.state, reopened.run_id) == (RUNNING, "run-c")
    perfdb.queue.start_step(first, "run-c")
    assert perfdb.queue.fail_running_steps_of_run("run-b", "run-b late") == []
    assert perfdb.queue.get_step(first).state == RUNNING
