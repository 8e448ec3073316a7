"""The `perfdb_scheduler` sensor: evaluated as the daemon would (both databases), and in a real
daemon that is killed for several periods and restarted."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from jobs_pipeline.definitions import defs
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.scheduler import SCHEDULER_NAME
from jobs_pipeline.orchestration.tags import PERIOD_END_TAG, PERIOD_START_TAG, SCHEDULE_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.alarm_fleet import (
    ALARM_CALC,
    ALARM_IDS,
    HIGH,
    WITH_DATA,
    seed_fleet,
)
from jobs_pipeline_tests.orchestration.processes import (
    daemon_deployment,
    scratch_dagster_environment,
    wait_for,
)

PARAMETERS = {"object_names": list(WITH_DATA), "alarm_ids": list(ALARM_IDS)}


def sensor_named(name: str) -> dg.SensorDefinition:
    return next(sensor for sensor in defs.sensors or [] if sensor.name == name)  # type: ignore[union-attr]


SCHEDULER = sensor_named(SCHEDULER_NAME)
QUEUE_SENSOR = sensor_named("perfdb_queue_sensor")


def evaluate(sensor: dg.SensorDefinition, resource: PerfDBResource) -> object:
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(resources={"perfdb": resource}, instance=instance)
        return sensor(context)


def test_a_tick_creates_the_ended_periods_and_disables_a_bad_schedule(
    perfdb: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    now = perfdb.schedules.clock()
    start = (now - timedelta(hours=5)).isoformat()
    perfdb.schedules.create("hourly", ALARM_CALC, PARAMETERS, "hour", start=start, catch_up=1)
    perfdb.schedules.create("broken", ALARM_CALC, PARAMETERS, "hour", start=start)
    # A frontend breaks the second one's parameters; the first goes on.
    with perfdb.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE job_schedules SET parameters = :p WHERE name = 'broken'"),
            {"p": '{"object_names": [], "alarm_ids": [1]}'},
        )

    result = evaluate(SCHEDULER, perfdb_resource)

    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == (
        "2 schedules due, 2 jobs created, 3 periods skipped, 1 schedules disabled"
    )
    jobs = perfdb.schedules.list_jobs("hourly")
    assert [job.state for job in jobs] == [JobState.QUEUED, JobState.QUEUED]
    hour = timedelta(hours=1)
    newest = perfdb.schedules.get("hourly").next_start
    assert newest is not None
    assert [(p.start, p.end) for p in perfdb.schedules.periods("hourly")] == [
        (newest - 2 * hour, newest - hour),
        (newest - hour, newest),
    ]
    broken = perfdb.schedules.get("broken")
    assert broken.enabled is False
    assert broken.comment == (
        "disabled: invalid parameters for 'Alarm Calculation': "
        "parameter 'object_names': [] should be non-empty"
    )
    assert perfdb.schedules.list_jobs("broken") == []
    again = evaluate(SCHEDULER, perfdb_resource)
    assert isinstance(again, dg.SkipReason) and again.skip_message == "no schedule due"


def test_two_ticks_at_once_create_each_period_once(perfdb: PerfDB, perfdb_url: str) -> None:
    now = perfdb.schedules.clock()
    for i in range(5):
        perfdb.schedules.create(
            f"quarter-{i}",
            ALARM_CALC,
            PARAMETERS,
            "15min",
            start=(now - timedelta(hours=6)).isoformat(),
            catch_up=100,
        )
    barrier = threading.Barrier(2)
    results: list[object] = []

    def tick() -> None:
        resource = PerfDBResource(url=perfdb_url)
        barrier.wait(timeout=30)
        results.append(evaluate(SCHEDULER, resource))

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(results) == 2
    for i in range(5):
        starts = [job.parameters["start"] for job in perfdb.schedules.list_jobs(f"quarter-{i}")]
        assert len(starts) in (24, 25)  # six hours of quarters, whatever quarter `now` is in
        assert len(set(starts)) == len(starts)


def test_runs_of_scheduled_jobs_carry_the_schedule_and_period(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    perfdb = seeded_db
    perfdb.schedules.create("fleet-daily", ALARM_CALC, PARAMETERS, "day", start="2024-03-01")
    perfdb.schedules.backfill("fleet-daily", "2024-03-01", "2024-03-03", actor="user:test")

    result = evaluate(QUEUE_SENSOR, perfdb_resource)

    assert isinstance(result, dg.SensorResult)
    tags = [request.tags for request in result.run_requests or []]
    assert [(t[SCHEDULE_TAG], t[PERIOD_START_TAG], t[PERIOD_END_TAG]) for t in tags] == [
        ("fleet-daily", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"),
        ("fleet-daily", "2024-03-02T00:00:00Z", "2024-03-03T00:00:00Z"),
    ]


# --- a real daemon ------------------------------------------------------------------------------

MINUTE = timedelta(minutes=1)
DAEMON_TIMEOUT = 240.0


@pytest.mark.slow
def test_a_killed_daemon_catches_up_exactly_the_missed_periods(
    perfdb: PerfDB, perfdb_url: str, tmp_path: Path
) -> None:
    seed_fleet(perfdb)
    now = perfdb.schedules.clock()
    # 1-minute periods from three minutes ago: when the daemon starts, three have ended.
    schedule = perfdb.schedules.create(
        "every-minute",
        ALARM_CALC,
        {"object_names": ["LAN-01"], "alarm_ids": [HIGH]},
        "1min",
        start=(now - 3 * MINUTE).isoformat(),
        catch_up=10,
    )
    first = schedule.first_start
    assert first is not None

    def starts() -> list[str]:
        return [job.parameters["start"] for job in perfdb.schedules.list_jobs("every-minute")]

    def ended_by(instant: object) -> list[str]:
        """Every period from the first that ended by `instant`, as the jobs write it."""
        count = 0
        while first + (count + 1) * MINUTE <= instant:  # type: ignore[operator]
            count += 1
        return [(first + i * MINUTE).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(count)]

    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    with scratch_dagster_environment(perfdb_url, tmp_path) as env:
        with daemon_deployment(env, first_dir) as running:
            wait_for(
                lambda: len(starts()) >= 3,
                timeout=DAEMON_TIMEOUT,
                what="the periods that ended before the daemon started",
                daemon=running.daemon,
            )
            os.killpg(running.daemon.process.pid, signal.SIGKILL)
            killed_at = perfdb.schedules.clock()
            before = starts()
        # Down while at least one more period ends (a minute mark passes, whenever it died); the
        # catch-up of several periods at once is the start above.
        resume_at = killed_at.replace(second=5, microsecond=0) + MINUTE
        time.sleep(max(0.0, (resume_at - perfdb.schedules.clock()).total_seconds()))
        assert starts() == before
        missed = [s for s in ended_by(perfdb.schedules.clock()) if s not in before]
        assert missed

        with daemon_deployment(env, second_dir) as running:
            wait_for(
                lambda: set(missed) <= set(starts()),
                timeout=DAEMON_TIMEOUT,
                what="the periods missed while the daemon was down",
                daemon=running.daemon,
            )
            checked_at = perfdb.schedules.clock()
            found = starts()
            # Each period once, none missing, none beyond the ones that ended.
            assert sorted(found) == found
            assert found == ended_by(checked_at)[: len(found)]
            assert len(found) >= len(ended_by(checked_at)) - 1
            runs = wait_for(
                lambda: running.instance.get_runs(
                    filters=dg.RunsFilter(tags={SCHEDULE_TAG: "every-minute"})
                ),
                timeout=DAEMON_TIMEOUT,
                what="a run of a scheduled job",
                daemon=running.daemon,
            )
            tags = runs[0].tags
            assert tags[PERIOD_START_TAG] in found
            assert tags[PERIOD_END_TAG] > tags[PERIOD_START_TAG]
