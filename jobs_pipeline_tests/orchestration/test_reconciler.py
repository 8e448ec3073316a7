"""The reconciler sweep against a real performance database (SQLite and PostgreSQL) and a real
Dagster instance: runs that ended, vanished or went silent; Queued jobs whose run ended before
claiming them; cancel requests written as row updates; runs of any origin."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import load_job
from jobs_pipeline.orchestration.reconciler import RECONCILER_NAME, Cursor, Reconciler, Sweep
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.sensors import run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.models import JobInstanceRow, table_of
from jobs_pipeline.perfdb.queue import utcnow
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline_tests.orchestration.alarm_fleet import WITH_DATA, alarm_job
from jobs_pipeline_tests.orchestration.perfdb_job_config import perfdb_job_resources, plan_config

RECONCILER = next(sensor for sensor in defs.sensors or () if sensor.name == RECONCILER_NAME)
FAILED, FINISHED, RUNNING, QUEUED, CREATED = (
    JobState.FAILED,
    JobState.FINISHED,
    JobState.RUNNING,
    JobState.QUEUED,
    JobState.CREATED,
)


def sweep(
    instance: dg.DagsterInstance, resource: PerfDBResource, cursor: str | None = None
) -> tuple[str, str | None]:
    """One evaluation of the reconciler sensor, as the daemon runs it."""
    context = dg.build_sensor_context(
        resources={"perfdb": resource}, cursor=cursor, instance=instance
    )
    result = RECONCILER(context)
    assert isinstance(result, dg.SkipReason)
    return result.skip_message or "", context.cursor


@dataclass(frozen=True)
class HeldJob:
    job_id: int
    run: dg.DagsterRun
    steps: list[int]


def job_held_by_a_run(
    perfdb: PerfDB,
    instance: dg.DagsterInstance,
    *,
    tags: dict[str, str] | None = None,
    started_steps: int = 1,
) -> HeldJob:
    """A run of `perfdb_job` that claimed its job and started its first steps."""
    job = alarm_job(perfdb, WITH_DATA)
    run = instance.create_run_for_job(
        job_def=defs.get_job_def("perfdb_job"),
        run_config=plan_config(job.id),
        tags=run_tags(job) if tags is None else tags,
    )
    perfdb.queue.claim_job(job.id, run.run_id)
    steps = [step.id for step in load_job(perfdb, job.id).create_steps()]
    for step_id in steps[:started_steps]:
        perfdb.queue.start_step(step_id, run.run_id)
    return HeldJob(job_id=job.id, run=run, steps=steps)


def run_for(instance: dg.DagsterInstance, job: Job) -> dg.DagsterRun:
    """A run of `perfdb_job` for the job, as the queue sensor would request it (not launched)."""
    return instance.create_run_for_job(
        job_def=defs.get_job_def("perfdb_job"), run_config=plan_config(job.id), tags=run_tags(job)
    )


def mark_started(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.handle_run_event(
        run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_START.value, job_name=run.job_name
        ),
    )


def snapshot(perfdb: PerfDB, job_id: int) -> tuple[Any, ...]:
    return (
        perfdb.queue.get_job(job_id),
        perfdb.queue.get_steps(job_id),
        perfdb.queue.history(job_id),
    )


def set_columns(perfdb: PerfDB, job_id: int, **values: Any) -> None:
    """Writes job columns the way a frontend writing rows directly would."""
    table = sa.table("job_instances", sa.column("id"), *(sa.column(name) for name in values))
    with perfdb.engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == job_id).values(**values))


def silence(perfdb: PerfDB, job_id: int, seconds: float) -> None:
    """As if the holding run's last heartbeat was `seconds` ago."""
    jobs = table_of(JobInstanceRow)
    with perfdb.engine.begin() as connection:
        connection.execute(
            jobs.update()
            .where(jobs.c.id == job_id)
            .values(heartbeat=utcnow() - timedelta(seconds=seconds), actor="run:silenced-by-test")
        )


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


# --- Running jobs whose run ended --------------------------------------------------------------


def test_a_failed_run_fails_its_running_steps_and_finalises_the_job(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance)
    instance.report_run_failed(held.run, "run worker was killed")

    summary, cursor = sweep(instance, perfdb_resource)

    reason = f"run {held.run.run_id} failed: run worker was killed"
    step = seeded_db.queue.get_step(held.steps[0])
    assert (step.state, step.comment) == (FAILED, reason)
    job = seeded_db.queue.get_job(held.job_id)
    assert (job.state, job.comment) == (FAILED, f"{reason}; 1 (25.00%) steps failed, 3 not run")
    assert "1 jobs reconciled" in summary
    # The dead run's page tells the job's outcome, as a finished run's summary would.
    [event] = [
        entry.dagster_event
        for entry in instance.all_logs(held.run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if entry.dagster_event is not None and entry.dagster_event.message.startswith("job ")
    ]
    attached = {name: value.value for name, value in event.engine_event_data.metadata.items()}
    assert attached["job_state"] == "Failed"
    assert attached["steps_failed"] == 1 and attached["steps_created"] == 3
    assert reason in attached["steps_not_finished"]
    # Idempotent: the next sweep changes nothing.
    before = snapshot(seeded_db, held.job_id)
    assert sweep(instance, perfdb_resource, cursor)[0] == "nothing to reconcile"
    assert snapshot(seeded_db, held.job_id) == before


def test_a_canceled_run_is_reconciled_too(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance)
    instance.report_run_canceled(held.run, "canceled from the UI")

    sweep(instance, perfdb_resource)

    reason = f"run {held.run.run_id} was canceled"
    assert seeded_db.queue.get_step(held.steps[0]).comment == reason
    job = seeded_db.queue.get_job(held.job_id)
    assert (job.state, job.comment) == (FAILED, f"{reason}; 1 (25.00%) steps failed, 3 not run")


def test_a_launchpad_run_without_the_job_tags_is_reconciled(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    # Started by hand with the job id in its config only: the job row names the run, and that
    # is what the sweep follows.
    held = job_held_by_a_run(seeded_db, instance, tags={})
    instance.report_run_failed(held.run, "boom")

    sweep(instance, perfdb_resource)

    assert seeded_db.queue.get_job(held.job_id).state == FAILED
    assert seeded_db.queue.get_step(held.steps[0]).state == FAILED


def test_a_run_that_succeeded_without_finalising_leaves_a_final_job(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance, started_steps=0)
    instance.handle_run_event(
        held.run.run_id,
        dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.RUN_SUCCESS.value, job_name=held.run.job_name
        ),
    )

    sweep(instance, perfdb_resource)

    job = seeded_db.queue.get_job(held.job_id)
    assert (job.state, job.comment) == (
        FAILED,
        f"run {held.run.run_id} succeeded; 4 of 4 steps not run",
    )
    assert {step.state for step in seeded_db.queue.get_steps(held.job_id)} == {CREATED}


def test_a_newer_run_that_took_the_job_over_is_left_alone(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance)
    instance.report_run_failed(held.run, "first run died")
    sweep(instance, perfdb_resource)
    seeded_db.queue.queue_job(held.job_id)
    newer = instance.create_run_for_job(
        job_def=defs.get_job_def("perfdb_job"),
        run_config=plan_config(held.job_id),
        tags=run_tags(seeded_db.queue.get_job(held.job_id)),
    )
    mark_started(instance, newer)
    seeded_db.queue.claim_job(held.job_id, newer.run_id)
    seeded_db.queue.start_step(held.steps[0], newer.run_id)
    before = snapshot(seeded_db, held.job_id)

    # The old run's failure is seen again (a late sweep): nothing of the newer run changes.
    summary, _ = sweep(instance, perfdb_resource)

    assert summary == "nothing to reconcile"
    assert snapshot(seeded_db, held.job_id) == before


# --- silent runs -------------------------------------------------------------------------------


def test_a_silent_run_still_started_in_dagster_is_failed_there_and_here(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance)
    mark_started(instance, held.run)

    # Beating: nothing happens.
    assert sweep(instance, perfdb_resource)[0] == "nothing to reconcile"
    assert seeded_db.queue.get_job(held.job_id).state == RUNNING

    silence(seeded_db, held.job_id, 3600)
    sweep(instance, perfdb_resource)

    run = instance.get_run_by_id(held.run.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.FAILURE  # its slot is free
    job = seeded_db.queue.get_job(held.job_id)
    assert job.state == FAILED
    assert job.comment is not None
    assert job.comment.startswith(f"run {held.run.run_id} stopped sending heartbeats (3600 s)")
    step = seeded_db.queue.get_step(held.steps[0])
    assert step.state == FAILED
    assert step.comment is not None and "stopped sending heartbeats" in step.comment


def test_a_run_unknown_to_dagster_fails_its_job_once_silent(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    seeded_db.queue.claim_job(job.id, "run-from-a-lost-instance")

    sweep(instance, perfdb_resource)
    assert seeded_db.queue.get_job(job.id).state == RUNNING

    silence(seeded_db, job.id, 3600)
    sweep(instance, perfdb_resource)
    after = seeded_db.queue.get_job(job.id)
    assert after.state == FAILED
    assert after.comment is not None
    assert after.comment.startswith("run run-from-a-lost-instance is unknown to Dagster")


# --- Queued jobs -----------------------------------------------------------------------------


def test_a_run_canceled_while_queued_fails_its_queued_job_which_can_be_requeued(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    run = run_for(instance, job)
    assert sweep(instance, perfdb_resource)[0] == "nothing to reconcile"  # still waiting
    instance.report_run_canceled(run, "canceled while queued")

    sweep(instance, perfdb_resource)

    failed = seeded_db.queue.get_job(job.id)
    assert (failed.state, failed.comment) == (
        FAILED,
        f"run {run.run_id} was canceled before it claimed the job: queue it again",
    )
    requeued = seeded_db.queue.queue_job(job.id)
    assert requeued.queue_count == 2
    # The canceled run belongs to the first queueing, not to this one.
    assert sweep(instance, perfdb_resource)[0] == "nothing to reconcile"
    assert seeded_db.queue.get_job(job.id).state == QUEUED


def test_a_queued_job_without_a_run_is_warned_about_once(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    reconciler = Reconciler(seeded_db, instance, queued_warning=0.0)
    cursor = Cursor()

    first = reconciler.sweep(cursor)
    second = reconciler.sweep(cursor)

    assert len(first.warnings) == 1
    assert f"job {job.id} has been Queued" in first.warnings[0]
    assert second.warnings == []
    assert json.loads(cursor.dump())["warned"] == [job.id]
    assert seeded_db.queue.get_job(job.id).state == QUEUED


# --- cancel requests written by a frontend -----------------------------------------------------


def test_cancel_requests_on_jobs_that_are_not_running_are_handled_at_once(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    created = alarm_job(seeded_db, WITH_DATA, queue=False)
    queued = alarm_job(seeded_db, WITH_DATA)
    queued_run = run_for(instance, queued)
    failed = alarm_job(seeded_db, WITH_DATA, queue=False)
    seeded_db.queue.cancel_job(failed.id, actor="earlier")
    for job in (created, queued, failed):
        set_columns(seeded_db, job.id, cancel_requested=utcnow(), cancel_requested_by="web:ana")

    summary, _ = sweep(instance, perfdb_resource)

    assert "3 cancel requests handled" in summary
    for job_id in (created.id, queued.id):
        after = seeded_db.queue.get_job(job_id)
        assert (after.state, after.comment) == (FAILED, "canceled by web:ana")
        assert after.cancel_requested is None
    # The queued job's run, waiting in Dagster's queue, will not start any more.
    run = instance.get_run_by_id(queued_run.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.CANCELED
    # A job that had already ended keeps its state; the request is cleared with a comment.
    after = seeded_db.queue.get_job(failed.id)
    assert (after.state, after.comment, after.cancel_requested) == (
        FAILED,
        "canceled by earlier",
        None,
    )
    assert seeded_db.queue.history(failed.id)[-1].comment == (
        "cancel request by web:ana cleared: the job had already ended"
    )


def test_a_cancel_request_on_a_running_job_terminates_its_run_then_fails_what_is_left(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance, started_steps=2)
    seeded_db.queue.finish_step(held.steps[0], run_id=held.run.run_id)
    mark_started(instance, held.run)
    set_columns(seeded_db, held.job_id, cancel_requested=utcnow(), cancel_requested_by="web:ana")

    sweep(instance, perfdb_resource)

    run = instance.get_run_by_id(held.run.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.CANCELING
    assert seeded_db.queue.get_job(held.job_id).state == RUNNING
    # The run worker stops (here: reported as Dagster would once it has).
    instance.report_run_canceled(run)

    sweep(instance, perfdb_resource)

    job = seeded_db.queue.get_job(held.job_id)
    assert job.state == FAILED
    assert job.comment == (
        f"canceled by web:ana; run {held.run.run_id} was canceled; 3 (75.00%) steps failed"
    )
    steps = seeded_db.queue.get_steps(held.job_id)
    assert [(step.state, step.comment) for step in steps] == [
        (FINISHED, None),  # finished steps keep their results
        (FAILED, "canceled"),  # Running when the run was terminated
        (FAILED, "canceled, not run"),
        (FAILED, "canceled, not run"),
    ]
    assert seeded_db.queue.queue_job(held.job_id).state == QUEUED


# --- a step whose op failed before the step started --------------------------------------------


def test_a_step_whose_op_failed_before_it_started_is_failed_with_the_ops_error(
    seeded_db: PerfDB,
    perfdb_url: str,
    perfdb_resource: PerfDBResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    doomed = load_job(seeded_db, job.id)
    seeded_db.queue.claim_job(job.id, "planner")  # only to create the steps up front
    first = doomed.create_steps()[0].id
    seeded_db.queue.fail_job(
        job.id, "setup", from_states=(RUNNING,), run_id="planner", who=Actor.RUN
    )
    seeded_db.queue.queue_job(job.id)
    original = type(seeded_db.queue).start_step

    def start_step(self: Any, step_id: int, run_id: str | None, **kwargs: Any) -> Any:
        if step_id == first:
            raise RuntimeError("could not write the step's start")
        return original(self, step_id, run_id, **kwargs)

    monkeypatch.setattr(type(seeded_db.queue), "start_step", start_step)
    result = defs.get_job_def("perfdb_job").execute_in_process(
        run_config=plan_config(job.id),
        instance=instance,
        resources=perfdb_job_resources(perfdb_url),
        tags=run_tags(seeded_db.queue.get_job(job.id)),
        raise_on_error=False,
    )
    assert not result.success
    assert seeded_db.queue.get_step(first).state == CREATED  # what the run left behind

    sweep(instance, perfdb_resource)

    step = seeded_db.queue.get_step(first)
    assert step.state == FAILED
    assert step.comment is not None
    assert step.comment.startswith(f"op failed in run {result.run_id}: ")
    assert "could not write the step's start" in step.comment
    after = seeded_db.queue.get_job(job.id)
    assert after.state == FAILED
    assert after.comment is not None and after.comment.endswith("1 (25.00%) steps failed")


def test_a_run_that_started_but_never_claimed_its_job_fails_it_once_silent(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    # Its worker died between starting and the plan op: Dagster's default launcher would keep
    # the run STARTED forever, and the job Queued with it.
    job = alarm_job(seeded_db, WITH_DATA)
    run = run_for(instance, job)
    mark_started(instance, run)
    cursor = Cursor()
    # Just started: its age counts from this sweep, by the database's clock.
    assert Reconciler(seeded_db, instance).sweep(cursor).summary() == "nothing to reconcile"
    assert run.run_id in Cursor.parse(cursor.dump()).started_seen

    Reconciler(seeded_db, instance, silence_seconds=0.0).sweep(cursor)

    failed = seeded_db.queue.get_job(job.id)
    assert failed.state == FAILED
    assert failed.comment is not None
    assert failed.comment.startswith(f"run {run.run_id} started ")
    assert failed.comment.endswith(" s ago but never claimed the job: queue it again")
    stored = instance.get_run_by_id(run.run_id)
    assert stored is not None and stored.status == dg.DagsterRunStatus.FAILURE


def test_a_run_whose_plan_op_waits_for_a_worker_is_alive_while_it_beats(
    seeded_db: PerfDB, instance: dg.DagsterInstance
) -> None:
    # A multiprocess or Celery run's plan op may wait for a process or a free worker; the run
    # worker beats on the Queued job meanwhile.
    job = alarm_job(seeded_db, WITH_DATA)
    run = run_for(instance, job)
    mark_started(instance, run)
    cursor = Cursor()
    Reconciler(seeded_db, instance, silence_seconds=0.2).sweep(cursor)  # seen started
    time.sleep(0.3)  # longer than the silence: only the beat keeps it alive
    assert seeded_db.queue.beat_queued(job.id)

    Reconciler(seeded_db, instance, silence_seconds=0.2).sweep(cursor)
    assert seeded_db.queue.get_job(job.id).state == QUEUED

    time.sleep(0.3)  # and once the beats stop, the run is taken for dead
    Reconciler(seeded_db, instance, silence_seconds=0.2).sweep(cursor)
    assert seeded_db.queue.get_job(job.id).state == FAILED


# --- rows moved by hand ------------------------------------------------------------------------


def as_a_worker(perfdb: PerfDB, job_id: int, **values: Any) -> None:
    """Plain SQL that names itself a run (what a worker role may do with the job row)."""
    set_columns(perfdb, job_id, actor="run:by-hand", **values)


def test_a_step_left_running_by_an_older_run_is_failed_and_its_job_ends(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance)
    newer = run_for(instance, seeded_db.queue.get_job(held.job_id))
    # The job handed to another run by hand: its first step stays Running under the first run,
    # fenced off from the newer one, which could never finalise the job.
    as_a_worker(seeded_db, held.job_id, run_id=newer.run_id)
    instance.report_run_failed(newer, "the newer run died too")

    summary, _ = sweep(instance, perfdb_resource)

    step = seeded_db.queue.get_step(held.steps[0])
    assert step.state == FAILED
    assert step.comment == (
        f"left Running by run {held.run.run_id}, which no longer holds job {held.job_id} "
        f"(Running, held by run {newer.run_id})"
    )
    job = seeded_db.queue.get_job(held.job_id)
    assert job.state == FAILED, summary
    assert job.comment is not None and job.comment.startswith(f"run {newer.run_id} failed")
    assert sweep(instance, perfdb_resource)[0] == "nothing to reconcile"


def test_a_step_left_running_under_a_queued_job_is_failed_before_its_next_run(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance)
    as_a_worker(seeded_db, held.job_id, state_id=int(FAILED))
    seeded_db.queue.queue_job(held.job_id)  # its step still Running under the first run

    sweep(instance, perfdb_resource)

    assert seeded_db.queue.get_step(held.steps[0]).state == FAILED
    newer = seeded_db.queue.claim_job(held.job_id, "run-newer")
    assert seeded_db.queue.start_step(held.steps[0], newer.run_id).state == RUNNING


def test_a_running_job_without_a_run_id_fails_once_silent(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    # `run:standalone` may hold a job without a run id; nothing will ever finish this one.
    set_columns(seeded_db, job.id, state_id=int(RUNNING), actor="run:standalone")
    assert sweep(instance, perfdb_resource)[0] == "nothing to reconcile"  # not silent yet

    Reconciler(seeded_db, instance, silence_seconds=0.0).sweep(Cursor())

    failed = seeded_db.queue.get_job(job.id)
    assert failed.state == FAILED
    assert failed.comment is not None
    assert failed.comment.startswith("Running without a run id and silent for ")
    assert failed.finished is not None


def test_a_job_claimed_finished_and_requeued_within_one_sweep_is_left_alone(
    seeded_db: PerfDB, instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    run = run_for(instance, job)
    # What the sweep read: the job Queued in its first queueing...
    [stale] = seeded_db.queue.list_jobs(state=QUEUED)
    # ...then, before the sweep judged it, its run claimed it and ended, and it was requeued.
    seeded_db.queue.claim_job(job.id, run.run_id)
    seeded_db.queue.fail_job(
        job.id, "not run", from_states=(RUNNING,), who=Actor.RUN, run_id=run.run_id
    )
    instance.report_run_failed(run, "the job failed")
    seeded_db.queue.queue_job(job.id)
    records = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))

    done = Sweep()
    ages = seeded_db.queue.ages([job.id])[job.id]
    Reconciler(seeded_db, instance)._judge_queued(stale, records, ages, {}, done)

    after = seeded_db.queue.get_job(job.id)
    assert (after.state, after.queue_count) == (QUEUED, 2)
    assert done.finalised == []


# --- step limits: alive is not enough ------------------------------------------------------------


def test_a_running_job_whose_steps_no_worker_picks_up_fails_them_with_the_reason(
    seeded_db: PerfDB, instance: dg.DagsterInstance
) -> None:
    held = job_held_by_a_run(seeded_db, instance, started_steps=0)
    mark_started(instance, held.run)
    reconciler = Reconciler(seeded_db, instance, pickup_seconds=1.0)
    reconciler.sweep(Cursor())
    assert seeded_db.queue.get_job(held.job_id).state == RUNNING  # just claimed

    time.sleep(1.3)
    seeded_db.queue.beat(held.job_id, held.run.run_id)  # the run is alive all along
    reconciler.sweep(Cursor())

    job = seeded_db.queue.get_job(held.job_id)
    assert (job.state, job.comment) == (
        FAILED,
        f"no worker picked up a step of run {held.run.run_id} within 1 s: run terminated; "
        f"4 (100.00%) steps failed",
    )
    steps = seeded_db.queue.get_steps(held.job_id)
    assert {(step.state, step.comment) for step in steps} == {
        (FAILED, "not picked up by a worker within 1 s")
    }


def test_a_started_run_whose_plan_step_no_worker_picks_up_fails_its_queued_job(
    seeded_db: PerfDB, instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    run = run_for(instance, job)
    mark_started(instance, run)
    reconciler = Reconciler(seeded_db, instance, pickup_seconds=1.0)
    cursor = Cursor()
    seeded_db.queue.beat_queued(job.id)  # the run worker beats while the plan step waits
    reconciler.sweep(cursor)
    assert seeded_db.queue.get_job(job.id).state == QUEUED
    assert list(json.loads(cursor.dump())["unclaimed"]) == [run.run_id]

    time.sleep(1.3)
    seeded_db.queue.beat_queued(job.id)
    reconciler.sweep(Cursor.parse(cursor.dump()))

    failed = seeded_db.queue.get_job(job.id)
    assert (failed.state, failed.comment) == (
        FAILED,
        f"no worker picked up run {run.run_id} within 1 s (is a worker listening to its "
        f"queue?): queue it again",
    )
