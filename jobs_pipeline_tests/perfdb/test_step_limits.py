"""The queries behind the step limits, on SQLite and PostgreSQL: ages come from the database
clock, and only steps of the run holding their job count."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from jobs_pipeline.jobs.base import JobInstance
from jobs_pipeline.jobs.step_limits import (
    human_duration,
    max_step_seconds,
    shortest_max_step_seconds,
)
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidTransition
from jobs_pipeline.perfdb.step_limits import (
    database_now,
    jobs_idle_longer_than,
    steps_running_longer_than,
)
from jobs_pipeline.settings import MAX_STEP_SECONDS, SettingError
from jobs_pipeline_tests.perfdb.queue_jobs import (
    FAILED,
    QUEUED,
    new_job,
    running_job,
)

ALARM_CALC = "Alarm Calculation"


def wait_past(seconds: float) -> None:
    time.sleep(seconds + 0.3)


def test_the_database_clock_is_read_as_utc(perfdb: PerfDB) -> None:
    now = database_now(perfdb.engine)
    assert now.tzinfo is not None
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5  # the same machine


def test_steps_running_longer_than_a_limit_are_found_with_their_age(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [first, second] = running_job(perfdb, object_ids, count=2)
    perfdb.queue.start_step(first, "run-a")
    assert steps_running_longer_than(perfdb.engine, 1.0, limit=10) == []
    wait_past(1.0)

    [step] = steps_running_longer_than(perfdb.engine, 1.0, limit=10)
    assert (step.step_id, step.job_id, step.type_name, step.run_id) == (
        first,
        job_id,
        ALARM_CALC,
        "run-a",
    )
    assert 1.0 < step.seconds < 60
    assert steps_running_longer_than(perfdb.engine, 120.0, limit=10) == []
    perfdb.queue.finish_step(first, run_id="run-a")  # no longer Running: no longer found
    assert steps_running_longer_than(perfdb.engine, 1.0, limit=10) == []
    assert second


def test_a_running_job_whose_steps_wait_and_nothing_moves_is_idle(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, steps = running_job(perfdb, object_ids, count=3)
    assert jobs_idle_longer_than(perfdb.engine, 1.0, limit=10) == []  # just claimed
    wait_past(1.0)

    [idle] = jobs_idle_longer_than(perfdb.engine, 1.0, limit=10)
    assert (idle.job_id, idle.run_id, idle.waiting_step_ids) == (job_id, "run-a", steps)
    assert 1.0 < idle.seconds < 60

    perfdb.queue.start_step(steps[0], "run-a")  # a step Running: picked up
    wait_past(1.0)
    assert jobs_idle_longer_than(perfdb.engine, 1.0, limit=10) == []
    perfdb.queue.finish_step(steps[0], run_id="run-a")  # a step that just moved: not idle
    assert jobs_idle_longer_than(perfdb.engine, 1.0, limit=10) == []
    wait_past(1.0)
    [idle] = jobs_idle_longer_than(perfdb.engine, 1.0, limit=10)
    assert idle.waiting_step_ids == steps[1:]


def test_a_job_with_nothing_left_to_pick_up_is_not_idle(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [step] = running_job(perfdb, object_ids, count=1)
    perfdb.queue.start_step(step, "run-a")
    perfdb.queue.finish_step(step, "boom", run_id="run-a")  # the job is Failed now
    perfdb.queue.queue_job(job_id)
    perfdb.queue.claim_job(job_id, "run-b")  # the Failed step waits for run-b
    wait_past(1.0)
    [idle] = jobs_idle_longer_than(perfdb.engine, 1.0, limit=10)
    assert (idle.run_id, idle.waiting_step_ids) == ("run-b", [step])

    perfdb.queue.start_step(step, "run-b")
    perfdb.queue.finish_step(step, run_id="run-b")  # the job is Finished
    wait_past(1.0)
    assert jobs_idle_longer_than(perfdb.engine, 1.0, limit=10) == []


def test_failing_a_queued_job_is_fenced_by_its_queue_count(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    job_id, [step] = running_job(perfdb, object_ids, count=1)  # queued once, claimed
    perfdb.queue.start_step(step, "run-a")
    perfdb.queue.finish_step(step, run_id="run-a")
    perfdb.queue.queue_job(job_id)  # claimed, finished and requeued: its second queueing

    with pytest.raises(InvalidTransition, match="was queued again"):
        perfdb.queue.fail_job(job_id, "run ended unclaimed", queue_count=1)
    assert perfdb.queue.get_job(job_id).state == QUEUED
    job = perfdb.queue.fail_job(job_id, "run ended unclaimed", queue_count=2)
    assert (job.state, job.comment) == (FAILED, "run ended unclaimed")


def test_a_job_queued_once_is_failed_under_its_count(perfdb: PerfDB) -> None:
    job = new_job(perfdb, queue=True)
    assert perfdb.queue.fail_job(job.id, "x", queue_count=job.queue_count).state == FAILED


# --- limits and settings ---------------------------------------------------------------------


def test_max_step_seconds_comes_from_the_class_unless_the_setting_overrides_it() -> None:
    assert JobInstance._max_step_seconds == 3600.0
    assert max_step_seconds(ALARM_CALC, {}) == 3600.0
    assert max_step_seconds("Unknown Type", {}) == 3600.0
    env = {MAX_STEP_SECONDS.name: "120, Alarm Calculation = 5.5"}
    assert max_step_seconds(ALARM_CALC, env) == 5.5
    assert max_step_seconds("Unknown Type", env) == 120.0
    assert shortest_max_step_seconds(env) == 5.5
    assert max_step_seconds(ALARM_CALC, {MAX_STEP_SECONDS.name: "90"}) == 90.0


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("soon", "'soon' is not a positive number of seconds"),
        ("0", "'0' is not a positive number of seconds"),
        ("60, =60", "'=60' names no job type"),
        ("Alarm Calculation=-1", "the limit of 'Alarm Calculation' is not a positive number"),
    ],
)
def test_a_bad_max_step_setting_is_named(text: str, detail: str) -> None:
    with pytest.raises(SettingError) as error:
        max_step_seconds(ALARM_CALC, {MAX_STEP_SECONDS.name: text})
    assert str(error.value).startswith(
        f"JOBS_PIPELINE_MAX_STEP_SECONDS must be {MAX_STEP_SECONDS.takes}, got {text!r} ({detail}"
    )


def test_durations_read_as_people_say_them() -> None:
    assert [human_duration(s) for s in (5, 600, 3600, 5400)] == [
        "5 s",
        "10 min",
        "1 h",
        "1 h 30 min",
    ]
