"""The simulated year of `benchmarks/year.py`, written straight into the tables: one ended daily
job a day with its steps, history and occurrences, as its run would have left them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from year_probes import Fleet  # benchmarks/year_probes.py

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.types import SQLITE_TIMESTAMP_FORMAT

# The simulated year; its day d's job ran from 01:00 to 03:00 of DAY_ZERO + d days.
DAY_ZERO = datetime(2025, 1, 1, tzinfo=UTC)
FAILING_EVERY = 20
OCCURRENCE_EVERY = 10
JOB_TABLES = ("job_instances", "job_steps", "job_state_history", "alarm_occurrences")
JOB_COLUMNS = (
    "id type_id state_id parameters description comment created started finished "
    "last_state_change queue_count run_id"
).split()
STEP_COLUMNS = (
    "id job_id position object_id alarm_id state_id comment created started finished "
    "last_state_change attempts run_id"
).split()
HISTORY_COLUMNS = "id job_id step_id from_state_id to_state_id actor comment changed_at".split()
OCCURRENCE_COLUMNS = "id object_id alarm_id start_time end_time peak_value step_id".split()


@dataclass
class DayRows:
    jobs: list[tuple[Any, ...]] = field(default_factory=list)
    steps: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    occurrences: list[tuple[Any, ...]] = field(default_factory=list)


def day_rows(fleet: Fleet, days: Iterable[int], next_ids: dict[str, int]) -> DayRows:
    """The rows of one ended daily job per day, as its run would have left them."""
    rows = DayRows()
    object_ids = list(fleet.objects.values())
    for day in days:
        start = DAY_ZERO + timedelta(days=day)
        created, claimed, ended = (start + timedelta(hours=h) for h in (0, 1, 3))
        failing = day % FAILING_EVERY == 0
        job_id = next_ids["job_instances"]
        next_ids["job_instances"] += 1
        run_id = f"run-day-{day}"
        failed_steps = 0
        for position, (object_id, alarm_id) in enumerate(
            (o, a) for o in object_ids for a in fleet.alarms
        ):
            step_id = next_ids["job_steps"]
            next_ids["job_steps"] += 1
            fails = failing and position % 100 == 0
            failed_steps += fails
            state = JobState.FAILED if fails else JobState.FINISHED
            done = claimed + timedelta(milliseconds=30 * (position + 1))
            comment = "no data for feature 'temperature'" if fails else None
            rows.steps.append(
                (
                    step_id,
                    job_id,
                    position,
                    object_id,
                    alarm_id,
                    state,
                    comment,
                    created,
                    done - timedelta(milliseconds=25),
                    done,
                    done,
                    1,
                    run_id,
                )
            )
            for move in (
                (None, JobState.CREATED, "run:" + run_id, None, created),
                (JobState.CREATED, JobState.RUNNING, "run:" + run_id, None, done),
                (JobState.RUNNING, state, "run:" + run_id, comment, done),
            ):
                rows.history.append((next_ids["job_state_history"], job_id, step_id, *move))
                next_ids["job_state_history"] += 1
            if position % OCCURRENCE_EVERY == 0:
                rows.occurrences.append(
                    (
                        next_ids["alarm_occurrences"],
                        object_id,
                        alarm_id,
                        start,
                        start + timedelta(minutes=30),
                        70.0 + position % 30,
                        step_id,
                    )
                )
                next_ids["alarm_occurrences"] += 1
        steps = fleet.steps_per_day
        state = JobState.FAILED if failed_steps else JobState.FINISHED
        comment = (
            f"{failed_steps} ({failed_steps / steps:.2%}) steps failed" if failed_steps else None
        )
        parameters = {
            "object_names": list(fleet.objects),
            "alarm_ids": fleet.alarms,
            "start": start.strftime("%Y-%m-%d %H:%M:%S"),
            "end": (start + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"),
        }
        rows.jobs.append(
            (
                job_id,
                fleet.type_id,
                state,
                parameters,
                f"fleet day {day}",
                comment,
                created,
                claimed,
                ended,
                ended,
                1,
                run_id,
            )
        )
        for move in (
            (None, JobState.CREATED, "user:cli", None, created),
            (JobState.CREATED, JobState.QUEUED, "user:cli", None, created),
            (JobState.QUEUED, JobState.RUNNING, "run:" + run_id, None, claimed),
            (JobState.RUNNING, state, "run:" + run_id, comment, ended),
        ):
            rows.history.append((next_ids["job_state_history"], job_id, None, *move))
            next_ids["job_state_history"] += 1
    return rows


def seed_days(perfdb: PerfDB, fleet: Fleet, days: Sequence[int]) -> None:
    """Writes the days' ended jobs, steps, history and occurrences into the tables, in one
    transaction. The job triggers would refuse rows that are born Finished: this transaction, in
    this scratch database only, turns them off (PostgreSQL: replica mode, as superuser; SQLite:
    the triggers of the job and step tables are dropped, then created again from their stored
    SQL before commit)."""
    with perfdb.engine.begin() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        postgresql = connection.dialect.name == "postgresql"
        triggers: list[str] = []
        if postgresql:
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            saved = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name IN ('job_instances', 'job_steps')"
            ).all()
            for name, sql in saved:
                connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
                triggers.append(sql)
        next_ids = {
            table: connection.exec_driver_sql(
                f"SELECT coalesce(max(id), 0) + 1 FROM {table}"
            ).scalar_one()
            for table in JOB_TABLES
        }
        rows = day_rows(fleet, days, next_ids)
        write = _copy_rows if postgresql else _insert_rows
        write(raw, "job_instances", JOB_COLUMNS, rows.jobs)
        write(raw, "job_steps", STEP_COLUMNS, rows.steps)
        write(raw, "job_state_history", HISTORY_COLUMNS, rows.history)
        write(raw, "alarm_occurrences", OCCURRENCE_COLUMNS, rows.occurrences)
        if postgresql:
            for table in JOB_TABLES:
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        for sql in triggers:
            connection.exec_driver_sql(sql)


def _copy_rows(raw: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    from psycopg.types.json import Jsonb

    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [
                    Jsonb(v) if isinstance(v, dict) else int(v) if isinstance(v, JobState) else v
                    for v in row
                ]
            )


def _insert_rows(raw: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).strftime(SQLITE_TIMESTAMP_FORMAT)
        if isinstance(v, dict):
            return json.dumps(v)
        if isinstance(v, JobState):
            return int(v)
        return v

    marks = ", ".join("?" for _ in columns)
    raw.cursor().executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
        [[value(v) for v in row] for row in rows],
    )
