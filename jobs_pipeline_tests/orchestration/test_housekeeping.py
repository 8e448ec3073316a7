"""Housekeeping on both backends, with real Dagster runs: a dry run changes nothing; only ended
jobs past their keep time go, with their steps, history, Dagster runs, events and compute logs;
results stay; a job running meanwhile finishes untouched; a schedule never recreates a removed
period; the daily Dagster job shows its counts and a setting turns it off.

Keep times are measured from the database clock; tests that need a job to be old look from a
later moment (`as_of`) instead of rewriting `finished`, which the database does not let anyone
change.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from jobs_pipeline.definitions import defs
from jobs_pipeline.orchestration.housekeeping import count_events, run_housekeeping, runs_of_job
from jobs_pipeline.orchestration.housekeeping_schedule import (
    HOUSEKEEPING_JOB_NAME,
    HOUSEKEEPING_SCHEDULE_NAME,
)
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.sensors import run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.housekeeping import Retention
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import HOUSEKEEPING_SCHEDULE
from jobs_pipeline_tests.orchestration.alarm_fleet import HIGH, alarm_job, import_missing_values
from jobs_pipeline_tests.orchestration.perfdb_job_config import perfdb_job_resources, plan_config

pytestmark = [
    pytest.mark.usefixtures("perfdb_resource"),
]

RETENTION = Retention(keep_finished=timedelta(days=90), keep_failed=timedelta(days=365))
# Seen from here, a Finished job of today is past its keep time, a Failed one is not.
LATER = timedelta(days=100)


def run_job(perfdb: PerfDB, url: str, instance: dg.DagsterInstance) -> int:
    """A queued alarm job run for real by Dagster, with the tags the queue sensor gives it."""
    job = alarm_job(perfdb)
    result = defs.get_job_def("perfdb_job").execute_in_process(
        run_config=plan_config(job.id),
        instance=instance,
        resources=perfdb_job_resources(url),
        tags=run_tags(job),
        raise_on_error=False,
    )
    run_id = result.run_id
    # A compute log of the run, as a run worker capturing its ops' output leaves one.
    log_key = instance.compute_log_manager.build_log_key_for_run(run_id, "plan_job")
    with instance.compute_log_manager.capture_logs(log_key):
        print("captured output of the plan op")
    assert instance.compute_log_manager.is_capture_complete(log_key)
    return job.id


def rows(perfdb: PerfDB, table: str, where: str = "") -> int:
    with perfdb.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one()


def job_rows(perfdb: PerfDB, job_id: int) -> tuple[int, int, int]:
    """(job rows, step rows, history rows) of one job."""
    return (
        rows(perfdb, "job_instances", f"WHERE id = {job_id}"),
        rows(perfdb, "job_steps", f"WHERE job_id = {job_id}"),
        rows(perfdb, "job_state_history", f"WHERE job_id = {job_id}"),
    )


def dagster_footprint(instance: dg.DagsterInstance, job_id: int) -> tuple[int, int, bool]:
    """(runs, events, whether a compute log is left) of one job in the Dagster instance."""
    runs = runs_of_job(instance, job_id)
    events = sum(count_events(instance, run.run_id) for run in runs)
    return len(runs), events, bool(runs) and all(has_compute_log(instance, r.run_id) for r in runs)


def has_compute_log(instance: dg.DagsterInstance, run_id: str) -> bool:
    log_key = instance.compute_log_manager.build_log_key_for_run(run_id, "plan_job")
    return instance.compute_log_manager.is_capture_complete(log_key)


def test_a_dry_run_counts_what_would_go_and_changes_nothing(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    import_missing_values(seeded_db)
    job_id = run_job(seeded_db, perfdb_url, dagster_instance)
    assert seeded_db.queue.get_job(job_id).state == JobState.FINISHED
    before = (job_rows(seeded_db, job_id), dagster_footprint(dagster_instance, job_id))
    (_, steps, history), (runs, events, has_log) = before
    assert steps == 6 and history > steps and runs == 1 and events > 6 * 3 and has_log

    later = seeded_db.housekeeping.clock() + LATER
    report = run_housekeeping(seeded_db, dagster_instance, RETENTION, dry_run=True, as_of=later)

    assert (report.dry_run, report.finished_jobs, report.failed_jobs) == (True, 1, 0)
    assert (report.steps, report.history_rows, report.runs, report.events) == (
        steps,
        history,
        runs,
        events,
    )
    assert report.summary().startswith("would remove 1 jobs (1 Finished, 0 Failed), 6 steps")
    assert (job_rows(seeded_db, job_id), dagster_footprint(dagster_instance, job_id)) == before


def test_only_ended_jobs_past_their_keep_time_go_with_their_runs_and_results_stay(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    failed = run_job(seeded_db, perfdb_url, dagster_instance)  # LAN-03 has no data yet
    import_missing_values(seeded_db)
    finished = run_job(seeded_db, perfdb_url, dagster_instance)
    queued = alarm_job(seeded_db).id
    created = alarm_job(seeded_db, queue=False).id
    assert [seeded_db.queue.get_job(i).state for i in (failed, finished, queued, created)] == [
        JobState.FAILED,
        JobState.FINISHED,
        JobState.QUEUED,
        JobState.CREATED,
    ]
    finished_steps = [step.id for step in seeded_db.queue.get_steps(finished)]
    occurrences = rows(seeded_db, "alarm_occurrences")
    of_finished = rows(
        seeded_db,
        "alarm_occurrences",
        f"WHERE step_id IN ({', '.join(map(str, finished_steps))})",
    )
    assert of_finished > 0
    (_, steps, history), (runs, events, _) = (
        job_rows(seeded_db, finished),
        dagster_footprint(dagster_instance, finished),
    )
    kept = {
        job_id: (job_rows(seeded_db, job_id), dagster_footprint(dagster_instance, job_id))
        for job_id in (failed, queued, created)
    }
    [finished_run] = runs_of_job(dagster_instance, finished)

    later = seeded_db.housekeeping.clock() + LATER
    report = run_housekeeping(seeded_db, dagster_instance, RETENTION, as_of=later)

    assert (report.finished_jobs, report.failed_jobs, report.jobs_left) == (1, 0, 0)
    assert (report.steps, report.history_rows, report.runs, report.events) == (
        steps,
        history,
        runs,
        events,
    )
    assert job_rows(seeded_db, finished) == (0, 0, 0)
    assert dagster_footprint(dagster_instance, finished) == (0, 0, False)
    assert dagster_instance.get_run_by_id(finished_run.run_id) is None
    assert dagster_instance.all_logs(finished_run.run_id) == []
    assert not has_compute_log(dagster_instance, finished_run.run_id)
    # Everything else stays as it was; the results stay, no longer linked to a step.
    assert {
        job_id: (job_rows(seeded_db, job_id), dagster_footprint(dagster_instance, job_id))
        for job_id in kept
    } == kept
    assert rows(seeded_db, "alarm_occurrences") == occurrences
    assert rows(seeded_db, "alarm_occurrences", "WHERE step_id IS NULL") == of_finished
    assert report.occurrences_unlinked == of_finished

    # A year later the Failed job goes too; the Queued and Created ones never do.
    report = run_housekeeping(
        seeded_db, dagster_instance, RETENTION, as_of=later + timedelta(days=300)
    )
    assert (report.finished_jobs, report.failed_jobs, report.runs) == (0, 1, 1)
    assert [job.id for job in seeded_db.queue.list_jobs()] == [queued, created]


def test_a_job_queued_again_meanwhile_is_left_alone(seeded_db: PerfDB) -> None:
    job_id = ended_job(seeded_db, [object_id(seeded_db, "LAN-01")], run_id="run-old")
    cutoffs = Retention(keep_finished=timedelta(0)).cutoffs(seeded_db.housekeeping.clock())
    [expired] = seeded_db.housekeeping.expired_jobs(cutoffs)
    seeded_db.queue.queue_job(expired.id)

    assert seeded_db.housekeeping.remove_job(job_id, cutoffs) is None
    assert job_rows(seeded_db, job_id)[:2] == (1, 1)
    assert seeded_db.queue.get_job(job_id).state == JobState.QUEUED


def test_a_job_with_a_run_that_has_not_ended_is_left_for_a_later_pass(
    seeded_db: PerfDB, dagster_instance: dg.DagsterInstance
) -> None:
    job_id = ended_job(seeded_db, [object_id(seeded_db, "LAN-01")], run_id="run-old")
    run = dagster_instance.create_run_for_job(
        job_def=defs.get_job_def("perfdb_job"),
        run_config=plan_config(job_id),
        tags=run_tags(seeded_db.queue.get_job(job_id)),
    )
    keep_nothing = Retention(keep_finished=timedelta(0))

    report = run_housekeeping(seeded_db, dagster_instance, keep_nothing)

    assert (report.jobs, report.runs, report.jobs_left) == (0, 0, 1)
    assert job_rows(seeded_db, job_id)[:2] == (1, 1)
    assert dagster_instance.get_run_by_id(run.run_id) is not None


def object_id(perfdb: PerfDB, name: str) -> int:
    return perfdb.catalog.ensure_objects([name])[name]


def ended_job(perfdb: PerfDB, objects: list[int], *, run_id: str) -> int:
    """A Finished job with one step per object, through the state machine, without Dagster."""
    job = alarm_job(perfdb)
    steps = perfdb.queue.create_steps(
        job.id, [NewStep(object_id=o, alarm_id=HIGH) for o in objects]
    )
    perfdb.queue.claim_job(job.id, run_id)
    for step in steps:
        perfdb.queue.start_step(step.id, run_id)
        perfdb.queue.finish_step(step.id, run_id=run_id)
    assert perfdb.queue.get_job(job.id).state == JobState.FINISHED
    return job.id


def test_a_job_running_during_housekeeping_finishes_untouched(
    seeded_db: PerfDB, dagster_instance: dg.DagsterInstance
) -> None:
    objects = list(seeded_db.catalog.ensure_objects([f"WT-{i:02d}" for i in range(40)]).values())
    expired = [ended_job(seeded_db, objects, run_id=f"run-old-{i}") for i in range(4)]
    running = alarm_job(seeded_db)
    steps = seeded_db.queue.create_steps(
        running.id, [NewStep(object_id=o, alarm_id=HIGH) for o in objects]
    )
    seeded_db.queue.claim_job(running.id, "run-now")
    seeded_db.housekeeping.batch_rows = 7  # many short transactions, interleaved with the steps
    waits: list[float] = []
    failures: list[BaseException] = []

    def run_steps() -> None:
        try:
            for step in steps:
                for write, arguments in (
                    (seeded_db.queue.start_step, {"run_id": "run-now"}),
                    (seeded_db.queue.finish_step, {"run_id": "run-now"}),
                ):
                    began = time.monotonic()
                    write(step.id, **arguments)
                    waits.append(time.monotonic() - began)
                time.sleep(0.01)
        except BaseException as error:
            failures.append(error)

    writer = threading.Thread(target=run_steps)
    keep_nothing = Retention(keep_finished=timedelta(0), keep_failed=timedelta(0))
    writer.start()
    report = run_housekeeping(seeded_db, dagster_instance, keep_nothing)
    writer.join(timeout=120)

    assert not writer.is_alive() and failures == []
    assert report.finished_jobs == len(expired) and report.steps == len(expired) * len(objects)
    assert all(job_rows(seeded_db, job_id) == (0, 0, 0) for job_id in expired)
    job = seeded_db.queue.get_job(running.id)
    assert job.state == JobState.FINISHED
    assert [step.state for step in seeded_db.queue.get_steps(running.id)] == [
        JobState.FINISHED
    ] * len(objects)
    # (None ->) Created -> Queued -> Running -> Finished, and three rows per step.
    assert job_rows(seeded_db, running.id) == (1, len(objects), 4 + 3 * len(objects))
    assert max(waits) < 5.0  # generous on a loaded machine; the benchmark measures it


def test_a_schedule_never_recreates_a_removed_period(
    perfdb: PerfDB, dagster_instance: dg.DagsterInstance
) -> None:
    perfdb.catalog.ensure_objects(["WT-01"])
    schedule = perfdb.schedules.create(
        "fleet-daily",
        "Alarm Calculation",
        {"object_names": ["WT-01"], "alarm_ids": [7001]},
        "day",
        start="2024-03-01",
    )
    created = perfdb.schedules.backfill("fleet-daily", "2024-03-01", "2024-03-04", actor="user:cli")
    job_ids = [period.job_id for period in created.created]
    for job_id in job_ids:
        assert job_id is not None
        perfdb.queue.cancel_job(job_id)  # Queued -> Failed

    report = run_housekeeping(perfdb, dagster_instance, Retention(keep_failed=timedelta(0)))

    assert report.failed_jobs == 3 and perfdb.queue.list_jobs() == []
    assert [p.job_id for p in perfdb.schedules.periods("fleet-daily")] == [None] * 3
    again = perfdb.schedules.backfill("fleet-daily", "2024-03-01", "2024-03-04", actor="user:cli")
    assert (again.created, again.existing) == ([], 3)
    # A pass from scratch (as if the schedule's pointer were lost) skips them too.
    with perfdb.engine.begin() as connection:
        connection.execute(sa.text("UPDATE job_schedules SET next_start = NULL, next_due = NULL"))
    tick = perfdb.schedules.run_due(
        schedule.id, perfdb.schedules.clock(), actor="sensor:perfdb_scheduler"
    )
    assert tick is not None
    starts = {job.parameters["start"] for job in perfdb.queue.list_jobs()}
    assert starts and not starts & {"2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"}


def test_the_daily_run_shows_its_counts_and_a_setting_turns_it_off(
    seeded_db: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import_missing_values(seeded_db)
    run_job(seeded_db, perfdb_url, dagster_instance)
    monkeypatch.setenv("JOBS_PIPELINE_KEEP_FINISHED", "0s")
    job = defs.get_job_def(HOUSEKEEPING_JOB_NAME)

    result = job.execute_in_process(
        instance=dagster_instance, resources={"perfdb": PerfDBResource(url=perfdb_url)}
    )

    [output] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata: dict[str, Any] = {
        name: value.value for name, value in output.step_output_data.metadata.items()
    }
    assert (metadata["jobs"], metadata["steps"], metadata["Dagster runs"]) == (1, 6, 1)
    assert metadata["events"] > 0 and metadata["dry run"] is False
    assert seeded_db.queue.list_jobs() == []

    schedule = defs.resolve_schedule_def(HOUSEKEEPING_SCHEDULE_NAME)
    assert schedule.cron_schedule == "30 3 * * *"
    with dg.build_schedule_context(instance=dagster_instance) as context:
        assert isinstance(schedule.evaluate_tick(context).run_requests, list)
        assert len(schedule.evaluate_tick(context).run_requests or []) == 1
        monkeypatch.setenv(HOUSEKEEPING_SCHEDULE.name, "off")
        data = schedule.evaluate_tick(context)
        assert not data.run_requests and "off" in (data.skip_message or "")
