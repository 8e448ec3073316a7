"""Schedules in the database, on both backends: each period once, whoever creates it and
however often; the catch-up limit; pause; deleted jobs stay deleted; bad input writes nothing.

`run_due` takes the time to act at, so a downtime of days is one call here; the sensor passes
the database clock (`jobs_pipeline_tests/orchestration/test_scheduler.py` runs it for real).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError, InvalidParameters, NotFound
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.schedules import Schedule
from jobs_pipeline.perfdb.states import JobState

ALARM_CALC = "Alarm Calculation"
PARAMETERS = {"object_names": ["WT-01", "WT-02"], "alarm_ids": [7001]}
ACTOR = "sensor:perfdb_scheduler"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def daily(perfdb: PerfDB, name: str = "fleet-daily", **options: Any) -> Schedule:
    options.setdefault("timezone", "Europe/Berlin")
    options.setdefault("start", "2024-03-01")
    return perfdb.schedules.create(name, ALARM_CALC, PARAMETERS, "day", **options)


def periods_of(jobs: list[Job]) -> list[tuple[str, str]]:
    return sorted((job.parameters["start"], job.parameters["end"]) for job in jobs)


def all_jobs(perfdb: PerfDB) -> list[Job]:
    return perfdb.queue.list_jobs()


def test_backfill_twice_gives_each_period_once(perfdb: PerfDB) -> None:
    daily(perfdb)

    first = perfdb.schedules.backfill("fleet-daily", "2024-03-29", "2024-04-02", actor="user:cli")
    again = perfdb.schedules.backfill("fleet-daily", "2024-03-29", "2024-04-02", actor="user:cli")
    overlapping = perfdb.schedules.backfill(
        "fleet-daily", "2024-03-31", "2024-04-04", actor="user:cli"
    )

    assert (len(first.created), first.existing, first.not_ended) == (4, 0, 0)
    assert (len(again.created), again.existing) == (0, 4)
    assert (len(overlapping.created), overlapping.existing) == (2, 2)
    jobs = all_jobs(perfdb)
    # Berlin days in UTC: March 31 lasts 23 hours.
    assert periods_of(jobs) == [
        ("2024-03-28T23:00:00Z", "2024-03-29T23:00:00Z"),
        ("2024-03-29T23:00:00Z", "2024-03-30T23:00:00Z"),
        ("2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z"),
        ("2024-03-31T22:00:00Z", "2024-04-01T22:00:00Z"),
        ("2024-04-01T22:00:00Z", "2024-04-02T22:00:00Z"),
        ("2024-04-02T22:00:00Z", "2024-04-03T22:00:00Z"),
    ]
    assert {job.state for job in jobs} == {JobState.QUEUED}
    assert {job.queue_count for job in jobs} == {1}
    assert all(job.parameters["object_names"] == PARAMETERS["object_names"] for job in jobs)
    history = perfdb.queue.history(jobs[0].id)
    assert [(h.from_state, h.to_state, h.actor) for h in history] == [
        (None, JobState.QUEUED, "user:cli")
    ]
    assert [job.id for job in perfdb.schedules.list_jobs("fleet-daily")] == [j.id for j in jobs]


def test_backfill_with_offsets_and_periods_not_ended_yet(perfdb: PerfDB) -> None:
    daily(perfdb, timezone="America/New_York")
    now = perfdb.schedules.clock()
    tomorrow = (now + timedelta(days=2)).isoformat()
    # With an offset the bound is that instant: 2024-11-03 04:00 UTC is New York's midnight.
    outcome = perfdb.schedules.backfill(
        "fleet-daily", "2024-11-02T12:00:00+00:00", "2024-11-04T04:00:00Z", actor="user:cli"
    )
    assert [(p.start, p.end) for p in outcome.created] == [
        (utc(2024, 11, 3, 4), utc(2024, 11, 4, 5))
    ]
    later = perfdb.schedules.backfill(
        "fleet-daily", (now - timedelta(days=3)).isoformat(), tomorrow, actor="user:cli"
    )
    # Today's and tomorrow's days have not ended: the scheduler creates them when they do.
    assert later.not_ended in (2, 3)
    assert len(later.created) == 5 - later.not_ended


def test_a_pass_after_downtime_creates_the_newest_periods_up_to_the_catch_up_limit(
    perfdb: PerfDB,
) -> None:
    schedule = daily(perfdb, catch_up=2, delay=timedelta(hours=2))
    # Ten Berlin days ended on 2024-03-11 00:00; with the delay, the tenth is due at 02:00.
    before_delay = perfdb.schedules.run_due(schedule.id, utc(2024, 3, 11, 0, 30), actor=ACTOR)
    assert before_delay is not None
    outcome = perfdb.schedules.run_due(schedule.id, utc(2024, 3, 11, 1, 0), actor=ACTOR)
    assert outcome is not None

    # The first pass saw nine ended days: the newest three, six skipped.
    assert [p.start for p in before_delay.created] == [
        utc(2024, 3, 6, 23),
        utc(2024, 3, 7, 23),
        utc(2024, 3, 8, 23),
    ]
    assert before_delay.skipped == 6
    assert (before_delay.skipped_from, before_delay.skipped_to) == (
        utc(2024, 2, 29, 23),
        utc(2024, 3, 6, 23),
    )
    assert [p.start for p in outcome.created] == [utc(2024, 3, 9, 23)]
    assert outcome.skipped == 0
    # Nothing more is due until March 12, 02:00 Berlin time.
    stored = perfdb.schedules.get("fleet-daily")
    assert stored.next_due == utc(2024, 3, 12, 1)
    assert perfdb.schedules.due(utc(2024, 3, 12, 0, 59), limit=10) == []
    assert perfdb.schedules.due(utc(2024, 3, 12, 1), limit=10) == [schedule.id]
    again = perfdb.schedules.run_due(schedule.id, utc(2024, 3, 11, 1, 0), actor=ACTOR)
    assert again is not None and again.created == []

    # The skipped days come from a backfill, once.
    backfill = perfdb.schedules.backfill(
        "fleet-daily", "2024-03-01", "2024-03-11", actor="user:cli"
    )
    assert (len(backfill.created), backfill.existing) == (6, 4)
    starts = [p.start for p in perfdb.schedules.periods("fleet-daily")]
    assert starts == [utc(2024, 2, 29, 23) + timedelta(days=i) for i in range(10)]


def test_pause_stops_new_jobs_and_resume_catches_up(perfdb: PerfDB) -> None:
    schedule = daily(perfdb, catch_up=1)
    perfdb.schedules.run_due(schedule.id, utc(2024, 3, 2, 0), actor=ACTOR)
    paused = perfdb.schedules.set_enabled("fleet-daily", False, "paused by user:cli")
    assert (paused.enabled, paused.comment) == (False, "paused by user:cli")

    assert perfdb.schedules.due(utc(2024, 3, 20), limit=10) == []
    assert perfdb.schedules.run_due(schedule.id, utc(2024, 3, 20), actor=ACTOR) is None
    assert len(all_jobs(perfdb)) == 1

    resumed = perfdb.schedules.set_enabled("fleet-daily", True)
    assert (resumed.enabled, resumed.comment) == (True, None)
    outcome = perfdb.schedules.run_due(schedule.id, utc(2024, 3, 20), actor=ACTOR)
    assert outcome is not None
    assert [p.start for p in outcome.created] == [utc(2024, 3, 17, 23), utc(2024, 3, 18, 23)]
    assert outcome.skipped == 16


def test_a_deleted_job_is_never_created_again(perfdb: PerfDB) -> None:
    schedule = daily(perfdb)
    first = perfdb.schedules.run_due(schedule.id, utc(2024, 3, 2, 0), actor=ACTOR)
    assert first is not None and len(first.created) == 1
    job_id = first.created[0].job_id
    assert job_id is not None
    perfdb.queue.delete_job(job_id)

    [period] = perfdb.schedules.periods("fleet-daily")
    assert (period.start, period.job_id) == (utc(2024, 2, 29, 23), None)
    backfill = perfdb.schedules.backfill(
        "fleet-daily", "2024-03-01", "2024-03-02", actor="user:cli"
    )
    assert (backfill.created, backfill.existing) == ([], 1)
    # A later pass from scratch (as if the schedule's pointer were lost) still skips it.
    with perfdb.engine.begin() as connection:
        connection.execute(sa.text("UPDATE job_schedules SET next_start = NULL, next_due = NULL"))
    again = perfdb.schedules.run_due(schedule.id, utc(2024, 3, 3, 0), actor=ACTOR)
    assert again is not None
    assert [p.start for p in again.created] == [utc(2024, 3, 1, 23)]
    assert all_jobs(perfdb)[0].parameters["start"] == "2024-03-01T23:00:00Z"
    assert len(all_jobs(perfdb)) == 1


def test_passes_and_backfills_at_once_create_each_period_once(
    perfdb: PerfDB, perfdb_url: str
) -> None:
    schedules = [daily(perfdb, f"daily-{i}", catch_up=30) for i in range(3)]
    now = utc(2024, 3, 31, 12)
    workers = 4
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def act(index: int) -> None:
        db = PerfDB.connect(perfdb_url)
        try:
            barrier.wait(timeout=30)
            for schedule in schedules:
                if index % 2:
                    db.schedules.backfill(schedule.name, "2024-03-01", "2024-04-01", actor="b")
                else:
                    db.schedules.run_due(schedule.id, now, actor=ACTOR)
        except BaseException as error:
            errors.append(error)
        finally:
            db.dispose()

    threads = [threading.Thread(target=act, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    for schedule in schedules:
        jobs = perfdb.schedules.list_jobs(schedule.name)
        counts = Counter(job.parameters["start"] for job in jobs)
        assert len(counts) == 31  # the Berlin days of March
        assert set(counts.values()) == {1}
    assert len(all_jobs(perfdb)) == 93


def test_bad_input_is_refused_and_writes_nothing(perfdb: PerfDB) -> None:
    daily(perfdb)
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"type_name": "Nope"}, NotFound, "unknown job type 'Nope'"),
        ({"parameters": {**PARAMETERS, "start": "x"}}, InvalidParameters, "must not contain start"),
        ({"parameters": {"object_names": ["A"]}}, InvalidParameters, "'alarm_ids' is a required"),
        ({"parameters": [1]}, InvalidParameters, "must be a JSON object"),
        ({"every": "7min"}, InputError, "every must be Nmin"),
        ({"timezone": "Europe/Nowhere"}, InputError, "unknown time zone"),
        ({"start": "2024-03-31 02:30"}, InputError, "does not exist in Europe/Berlin"),
        ({"catch_up": -1}, InputError, "catch-up must be >= 0"),
        ({"name": "fleet-daily"}, InputError, "schedule 'fleet-daily' exists already"),
        ({"name": " "}, InputError, "a schedule needs a name"),
    ]
    for change, error, message in cases:
        arguments: dict[str, Any] = {
            "name": "other",
            "type_name": ALARM_CALC,
            "parameters": PARAMETERS,
            "every": "day",
            "timezone": "Europe/Berlin",
            **change,
        }
        with pytest.raises(error, match=message):
            perfdb.schedules.create(**arguments)
    assert [s.name for s in perfdb.schedules.all()] == ["fleet-daily"]
    with pytest.raises(InputError, match="must be after --from"):
        perfdb.schedules.backfill("fleet-daily", "2024-03-02", "2024-03-01", actor="user:cli")
    with pytest.raises(NotFound, match="schedule 'nope' does not exist"):
        perfdb.schedules.backfill("nope", "2024-03-01", "2024-03-02", actor="user:cli")
    assert all_jobs(perfdb) == []


def test_a_row_written_by_a_frontend_is_planned_and_a_bad_one_disabled(perfdb: PerfDB) -> None:
    with perfdb.engine.begin() as connection:
        for name, parameters, every, zone in [
            ("good", '{"object_names": ["A"], "alarm_ids": [1]}', "hour", "UTC"),
            ("bad-parameters", '{"object_names": ["A"]}', "hour", "UTC"),
            ("bad-every", '{"object_names": ["A"], "alarm_ids": [1]}', "hourly", "UTC"),
            ("bad-zone", '{"object_names": ["A"], "alarm_ids": [1]}', "day", "Berlin"),
        ]:
            connection.execute(
                sa.text(
                    "INSERT INTO job_schedules (name, type_id, parameters, every, timezone) "
                    "SELECT :name, id, :parameters, :every, :zone FROM job_types "
                    "WHERE name = :type"
                ),
                {
                    "name": name,
                    "parameters": parameters,
                    "every": every,
                    "zone": zone,
                    "type": ALARM_CALC,
                },
            )
    now = utc(2024, 5, 1, 10, 20)
    due = perfdb.schedules.due(now, limit=10)
    assert len(due) == 4
    outcomes = {
        o.schedule: o for o in (perfdb.schedules.run_due(i, now, actor=ACTOR) for i in due) if o
    }

    assert outcomes["good"].created == []  # its first period, 10:00-11:00, has not ended
    good = perfdb.schedules.get("good")
    assert (good.first_start, good.next_due, good.catch_up) == (
        utc(2024, 5, 1, 10),
        utc(2024, 5, 1, 11),
        3,
    )
    later = perfdb.schedules.run_due(good.id, utc(2024, 5, 1, 11), actor=ACTOR)
    assert later is not None and [p.start for p in later.created] == [utc(2024, 5, 1, 10)]
    for name, reason in [
        ("bad-parameters", "disabled: invalid parameters for 'Alarm Calculation'"),
        ("bad-every", "disabled: every must be Nmin"),
        ("bad-zone", "disabled: unknown time zone 'Berlin'"),
    ]:
        stored = perfdb.schedules.get(name)
        assert stored.enabled is False
        assert stored.comment is not None and stored.comment.startswith(reason)
        assert outcomes[name].disabled == stored.comment
    assert perfdb.schedules.due(utc(2024, 6, 1), limit=10) == [good.id]


def test_the_due_query_uses_the_index(perfdb: PerfDB) -> None:
    with perfdb.engine.begin() as connection:
        if perfdb.engine.dialect.name == "sqlite":
            plan = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM job_schedules WHERE enabled = 1 "
                "AND (next_due <= '2024' OR next_due IS NULL) ORDER BY next_due LIMIT 100"
            ).all()
            text = " ".join(str(row[-1]) for row in plan)
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = connection.exec_driver_sql(
                "EXPLAIN SELECT id FROM job_schedules WHERE enabled "
                "AND (next_due <= now() OR next_due IS NULL) ORDER BY next_due LIMIT 100"
            ).all()
            text = " ".join(row[0] for row in plan)
    assert "ix_job_schedules_enabled_next_due" in text
