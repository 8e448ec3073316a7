"""A year of a daily fleet job, with and without housekeeping, on PostgreSQL and SQLite.

One Alarm Calculation job a day over `--objects` objects x `--alarms` alarms (default 100 x 20:
2,000 steps, 6,004 history rows and 200 occurrences a day; one day in twenty the job fails with
1 % of its steps failed). The year is written straight into the tables (PostgreSQL: COPY;
SQLite: executemany), not run through Dagster, which at some 27 ms a step would take hours. Two
databases per backend get the same days: one keeps everything, the other runs housekeeping
(Finished jobs kept 90 days, Failed 365) after every simulated day, as the daily schedule would,
with the simulated day's end as its clock (`as_of`).

On days 1, 90, 180 and 365 both databases report: the queue sensor's query, one reconciler
sweep, `job list` and `job show` of the day's 2,000-step job (the queries those commands run),
the cost of one step's writes (start and finish of a step of a Running job made through the
state machine), and the size of the job tables and their indexes. With housekeeping, day 365
must be within 1.2x of day 90 for each figure.

Housekeeping itself: the time of each daily pass (a day's worth of rows leaves), its throughput
in rows a second, and the longest wait of a step write made while passes run (a thread writes
steps of a Running job throughout the checkpoint days' passes). Dagster's part is measured on
real runs: `--real-steps` steps (a tenth of a day by default) run through `perfdb_job` in
process, then deleted with their events; the time per run and per event gives the Dagster time
of a day's run, added to the database time of a day. Targets: a day's worth in under 60 s; no
step write waits more than 1 s.

    .venv/bin/python benchmarks/year.py [--objects 100] [--alarms 20] [--days 365] \
        [--real-steps 200] [--keep-finished 90] [--keep-failed 365] [--backend postgresql|sqlite]

Each figure is printed with met/MISSED against its target; the exit code is 1 when one is
missed. PostgreSQL: scratch databases on `JOBS_PIPELINE_BENCH_PG_URL` (default: the local
server as root, which the seeding needs: it turns the job triggers off for its own transaction),
dropped afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from scratch import scratch_postgresql  # benchmarks/scratch.py

from jobs_pipeline.jobs import create_job, upgrade_database
from jobs_pipeline.orchestration.housekeeping import count_events, delete_run, run_housekeeping
from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, STEP_IO_MANAGER_KEY
from jobs_pipeline.orchestration.reconciler import Cursor, Reconciler
from jobs_pipeline.orchestration.resources import PerfDBResource, shared_perfdb
from jobs_pipeline.orchestration.sensors import SENSOR_BATCH_SIZE, run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.housekeeping import Retention
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.types import SQLITE_TIMESTAMP_FORMAT

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

ALARM_CALC = "Alarm Calculation"
FEATURE = "temperature"
FIRST_ALARM = 5001
CHECKPOINTS = (1, 90, 180, 365)
# The simulated year; its day d's job ran from 01:00 to 03:00 of DAY_ZERO + d days.
DAY_ZERO = datetime(2025, 1, 1, tzinfo=UTC)
FAILING_EVERY = 20
OCCURRENCE_EVERY = 10
FLAT_TARGET = 1.2
# Occurrences stay when their jobs go: they grow by design and have no flatness target.
RESULTS = "results bytes (kept)"
DAY_TARGET_SECONDS = 60.0
WAIT_TARGET_SECONDS = 1.0
REPEATS = 50
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


@dataclass(frozen=True)
class Fleet:
    type_id: int
    objects: dict[str, int]
    alarms: list[int]

    @property
    def steps_per_day(self) -> int:
        return len(self.objects) * len(self.alarms)


# --- databases -------------------------------------------------------------------------------


@contextmanager
def database(backend: str, directory: Path, name: str) -> Iterator[PerfDB]:
    with ExitStack() as stack:
        if backend == "postgresql":
            url = stack.enter_context(scratch_postgresql(f"jp_bench_year_{name}"))
        else:
            url = f"sqlite:///{directory / f'{name}.sqlite'}"
        perfdb = PerfDB.connect(url)
        stack.callback(perfdb.dispose)
        upgrade_database(perfdb)
        yield perfdb


def make_fleet(perfdb: PerfDB, objects: int, alarms: int) -> Fleet:
    names = [f"WT-{i:03d}" for i in range(1, objects + 1)]
    ids = perfdb.catalog.ensure_objects(names)
    perfdb.catalog.ensure_feature(FEATURE, unit="degC")
    alarm_ids = [FIRST_ALARM + i for i in range(alarms)]
    for i, alarm_id in enumerate(alarm_ids):
        perfdb.catalog.define_alarm(
            alarm_id=alarm_id,
            name=f"Temperature above {60 + i}",
            feature=FEATURE,
            operator=">",
            threshold=60.0 + i,
        )
    [type_id] = [
        row[0]
        for row in perfdb.engine.connect().execute(
            sa.text("SELECT id FROM job_types WHERE name = :name"), {"name": ALARM_CALC}
        )
    ]
    return Fleet(type_id=type_id, objects=ids, alarms=alarm_ids)


# --- the simulated year, written straight into the tables ------------------------------------


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
    the `job_*` triggers are dropped and created again from their stored SQL before commit)."""
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
                "AND name LIKE 'job\\_%' ESCAPE '\\'"
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


# --- figures ---------------------------------------------------------------------------------


def best_seconds(call: Callable[[], object], repeats: int = REPEATS) -> float:
    """The fastest of `repeats` calls: on a shared, loaded machine the slower ones measure the
    neighbours more than the call."""
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return min(times)


def running_job(perfdb: PerfDB, fleet: Fleet, steps: int, run_id: str) -> list[int]:
    """A Running job with `steps` Created steps, made through the state machine."""
    names = list(fleet.objects)
    job = create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": names,
            "alarm_ids": fleet.alarms,
            "start": "2026-01-01 00:00:00",
            "end": "2026-01-02 00:00:00",
        },
        description="live",
        queue=True,
    )
    pairs = [(o, a) for o in fleet.objects.values() for a in fleet.alarms][:steps]
    created = perfdb.queue.create_steps(
        job.id, [NewStep(object_id=o, alarm_id=a) for o, a in pairs]
    )
    perfdb.queue.claim_job(job.id, run_id)
    return [step.id for step in created]


def step_write_seconds(perfdb: PerfDB, fleet: Fleet, label: str, steps: int = 40) -> float:
    """The fastest of `steps` steps' writes (Running, then Finished)."""
    run_id = f"run-{label}"
    times = []
    step_ids = running_job(perfdb, fleet, steps, run_id)
    for step_id in step_ids:
        began = time.perf_counter()
        perfdb.queue.start_step(step_id, run_id)
        perfdb.queue.finish_step(step_id, run_id=run_id)
        times.append(time.perf_counter() - began)
    # Not part of the simulated year: the ended job goes.
    perfdb.queue.delete_job(perfdb.queue.get_step(step_ids[0]).job_id)
    return min(times)


def table_sizes(perfdb: PerfDB, tables: Sequence[str]) -> tuple[int, int]:
    """(table bytes, index bytes) of `tables`."""
    with perfdb.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            data = indexes = 0
            for table in tables:
                t, i = connection.exec_driver_sql(
                    f"SELECT pg_table_size('{table}'), pg_indexes_size('{table}')"
                ).one()
                data, indexes = data + t, indexes + i
            return data, indexes
        sizes = dict(
            connection.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").all()
        )
        index_names = {
            row[0]
            for row in connection.exec_driver_sql(
                "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"
            )
            if row[1] in tables
        }
        data = sum(sizes.get(table, 0) for table in tables)
        return data, sum(sizes.get(name, 0) for name in index_names)


def figures(
    perfdb: PerfDB, fleet: Fleet, instance: dg.DagsterInstance, day: int
) -> dict[str, float]:
    """The figures of one database on one day (seconds, bytes)."""
    shown = [job for job in perfdb.queue.list_jobs() if job.description == f"fleet day {day}"]
    assert shown, day
    shown_id = shown[0].id

    def show() -> None:
        perfdb.queue.get_job(shown_id)
        perfdb.queue.get_steps(shown_id)
        perfdb.schedules.periods_of_jobs([shown_id])

    def job_list() -> None:
        jobs = perfdb.queue.list_jobs()
        perfdb.schedules.periods_of_jobs([job.id for job in jobs])

    reconciler = Reconciler(perfdb, instance)
    tables, indexes = table_sizes(perfdb, JOB_TABLES[:3])
    results, result_indexes = table_sizes(perfdb, JOB_TABLES[3:])
    return {
        "sensor query": best_seconds(
            lambda: perfdb.queue.list_jobs(state=JobState.QUEUED, limit=SENSOR_BATCH_SIZE)
        ),
        "reconciler sweep": best_seconds(lambda: reconciler.sweep(Cursor())),
        "job list": best_seconds(job_list, 30),
        "job show (day's job)": best_seconds(show, 15),
        "step writes": step_write_seconds(perfdb, fleet, f"day-{day}"),
        "job tables bytes": tables,
        "job indexes bytes": indexes,
        RESULTS: results + result_indexes,
    }


# --- housekeeping ----------------------------------------------------------------------------


class StepWriter(threading.Thread):
    """Writes steps of Running jobs back to back and records how long each write took."""

    def __init__(self, perfdb: PerfDB, fleet: Fleet) -> None:
        super().__init__(daemon=True)
        self.perfdb, self.fleet = perfdb, fleet
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.waits: list[float] = []
        self.jobs = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.jobs += 1
            run_id = f"run-writer-{self.jobs}-{id(self)}"
            steps = running_job(self.perfdb, self.fleet, 200, run_id)
            for step_id in steps:
                timed = not self.stop.is_set()
                began = time.perf_counter()
                self.perfdb.queue.start_step(step_id, run_id)
                if timed:
                    self.waits.append(time.perf_counter() - began)
                began = time.perf_counter()
                self.perfdb.queue.finish_step(step_id, run_id=run_id)
                if timed:
                    self.waits.append(time.perf_counter() - began)
                self.ready.set()
            # Not part of the simulated year: the job ends, then goes.
            self.perfdb.queue.delete_job(self.perfdb.queue.get_step(steps[0]).job_id)


@dataclass
class PassTimes:
    seconds: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)


def housekeeping_pass(
    perfdb: PerfDB, instance: dg.DagsterInstance, retention: Retention, day: int, times: PassTimes
) -> None:
    """Housekeeping as the daily schedule would run it at the end of simulated `day`."""
    as_of = DAY_ZERO + timedelta(days=day + 1)
    report = run_housekeeping(perfdb, instance, retention, as_of=as_of)
    if report.jobs:
        times.seconds.append(report.seconds)
        times.rows.append(report.jobs + report.steps + report.history_rows)


# --- Dagster runs ----------------------------------------------------------------------------


@contextmanager
def dagster_instance(backend: str) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance storing runs like production: PostgreSQL beside a PostgreSQL
    performance database, else SQLite files."""
    if backend != "postgresql":
        with dg.instance_for_test() as instance:
            yield instance
        return
    with scratch_postgresql("jp_bench_year_dagster") as url:
        previous = os.environ.get("DAGSTER_PG_URL")
        os.environ["DAGSTER_PG_URL"] = url
        storage = {
            "module": "jobs_pipeline.orchestration.instance_storage",
            "class": "EnvironmentStorage",
            "config": {"postgres_url_env": "DAGSTER_PG_URL", "pool_size": 2},
        }
        try:
            with dg.instance_for_test(overrides={"storage": {"custom": storage}}) as instance:
                yield instance
        finally:
            if previous is None:
                os.environ.pop("DAGSTER_PG_URL", None)
            else:
                os.environ["DAGSTER_PG_URL"] = previous


def real_runs(
    perfdb: PerfDB, url: str, fleet: Fleet, instance: dg.DagsterInstance, steps: int
) -> tuple[int, float, float]:
    """Runs `steps` steps through `perfdb_job` in two runs, then deletes the runs: (events,
    seconds per run, seconds per event with the runs' own overhead included, which makes an
    extrapolation to one bigger run an upper bound)."""
    from jobs_pipeline.definitions import defs

    alarms = fleet.alarms
    objects = list(fleet.objects)[: max(1, steps // len(alarms))]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    perfdb.values.import_frame(
        pd.DataFrame(
            [
                {
                    "object": name,
                    "feature": FEATURE,
                    "timestamp": start + timedelta(minutes=10 * i),
                    "value": 50.0 + (i * 7 + n) % 40,
                }
                for n, name in enumerate(objects)
                for i in range(12)
            ]
        )
    )
    run_ids = []
    halves = [objects[: len(objects) // 2] or objects, objects[len(objects) // 2 :] or objects]
    for names in halves:
        job = create_job(
            perfdb,
            ALARM_CALC,
            {
                "object_names": names,
                "alarm_ids": alarms,
                "start": "2026-01-01 00:00:00",
                "end": "2026-01-01 02:00:00",
            },
            description="real run",
            queue=True,
        )
        with redirect_stdout(io.StringIO()):
            result = defs.get_job_def("perfdb_job").execute_in_process(
                run_config={
                    "ops": {PLAN_OP_NAME: {"config": {"job_id": job.id}}},
                    "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                },
                instance=instance,
                resources={
                    "perfdb": PerfDBResource(url=url),
                    STEP_IO_MANAGER_KEY: StepIdIOManager(),
                },
                tags=run_tags(job),
                raise_on_error=False,
            )
        assert result.success, job.id
        run_ids.append(result.run_id)
    events = sum(count_events(instance, run_id) for run_id in run_ids)
    began = time.perf_counter()
    for run_id in run_ids:
        delete_run(instance, run_id)
    seconds = time.perf_counter() - began
    return events, seconds / len(run_ids), seconds / events


# --- report ----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def show_value(name: str, value: float) -> str:
    if "bytes" in name:
        return f"{value / 1e6:.1f} MB"
    return f"{value * 1000:.2f} ms"


def report_figures(
    backend: str, table: dict[str, dict[int, dict[str, float]]], checkpoints: Sequence[int]
) -> bool:
    ok = True
    print(f"\n{backend}: figures by simulated day (without housekeeping | with housekeeping)")
    names = list(table["without"][checkpoints[0]])
    header = "".join(f"{'day ' + str(day):>22}" for day in checkpoints)
    print(f"{'':24}{header}   with: last/day-90")
    base = 90 if 90 in checkpoints else checkpoints[min(1, len(checkpoints) - 1)]
    last = checkpoints[-1]
    for name in names:
        cells = "".join(
            f"{show_value(name, table['without'][d][name]) + ' | ' + show_value(name, table['with'][d][name]):>22}"  # noqa: E501
            for d in checkpoints
        )
        ratio = table["with"][last][name] / table["with"][base][name]
        grown = table["without"][last][name] / table["without"][base][name]
        if name == RESULTS:
            print(f"{name:24}{cells}   {ratio:.2f}x (no target); without: {grown:.2f}x")
            continue
        met = ratio <= FLAT_TARGET
        ok &= met
        print(
            f"{name:24}{cells}   {ratio:.2f}x (target {FLAT_TARGET}x) {verdict(met)}; "
            f"without: {grown:.2f}x"
        )
    return ok


def run_backend(args: argparse.Namespace, backend: str, directory: Path) -> bool:
    retention = Retention(
        keep_finished=timedelta(days=args.keep_finished),
        keep_failed=timedelta(days=args.keep_failed),
    )
    checkpoints = [day for day in CHECKPOINTS if day < args.days] + [args.days]
    checkpoints = sorted(set(checkpoints))
    ok = True
    with ExitStack() as stack:
        instance = stack.enter_context(dagster_instance(backend))
        dbs = {
            kind: stack.enter_context(database(backend, directory, f"{backend}_{kind}"))
            for kind in ("without", "with")
        }
        fleets = {kind: make_fleet(db, args.objects, args.alarms) for kind, db in dbs.items()}
        for kind, db in dbs.items():
            for _ in range(3):  # a few jobs waiting, as the sensor would see them
                create_job(
                    db,
                    ALARM_CALC,
                    {
                        "object_names": list(fleets[kind].objects)[:1],
                        "alarm_ids": fleets[kind].alarms[:1],
                        "start": "2026-01-01 00:00:00",
                        "end": "2026-01-02 00:00:00",
                    },
                    queue=True,
                )
        events, per_run, per_event = real_runs(
            dbs["with"],
            dbs["with"].engine.url.render_as_string(hide_password=False),
            fleets["with"],
            instance,
            args.real_steps,
        )
        events_per_step = events / args.real_steps
        table: dict[str, dict[int, dict[str, float]]] = {"without": {}, "with": {}}
        times = PassTimes()
        seeding = 0.0
        day = 0
        for checkpoint in checkpoints:
            began = time.perf_counter()
            seed_days(dbs["without"], fleets["without"], range(day + 1, checkpoint + 1))
            seeding += time.perf_counter() - began
            for simulated in range(day + 1, checkpoint + 1):
                seed_days(dbs["with"], fleets["with"], [simulated])
                if simulated <= checkpoint - 3:
                    housekeeping_pass(dbs["with"], instance, retention, simulated, times)
                    continue
                # The last passes before a checkpoint run beside a job writing its steps.
                writer = StepWriter(dbs["with"], fleets["with"])
                writer.start()
                writer.ready.wait(60)
                housekeeping_pass(dbs["with"], instance, retention, simulated, times)
                writer.stop.set()
                writer.join()
                times.waits.extend(writer.waits)
            day = checkpoint
            for kind, db in dbs.items():
                table[kind][checkpoint] = figures(db, fleets[kind], instance, checkpoint)
            print(f"{backend}: day {checkpoint} measured", file=sys.stderr)
        ok &= report_figures(backend, table, checkpoints)
        steps_per_day = args.objects * args.alarms
        print(
            f"{backend}: seeding wrote {day} days of {steps_per_day} steps straight into the "
            f"tables in {seeding:.1f} s"
        )
        if times.seconds:
            day_db = statistics.median(times.seconds)
            rows = statistics.median(times.rows)
            day_dagster = per_event * events_per_step * steps_per_day
            total = day_db + day_dagster
            met = total < DAY_TARGET_SECONDS
            ok &= met
            print(
                f"{backend}: a day's worth ({steps_per_day} steps, {rows:.0f} rows) leaves the "
                f"database in {day_db:.2f} s median (max {max(times.seconds):.2f} s, "
                f"{rows / day_db:,.0f} rows/s over {len(times.seconds)} daily passes)"
            )
            print(
                f"{backend}: Dagster: {events} events of {args.real_steps} real steps "
                f"({events_per_step:.1f} a step) deleted at {per_run * 1000:.0f} ms a run, "
                f"{per_event * 1e6:.0f} us an event ({1 / per_event:,.0f} events/s); a day's run "
                f"of {steps_per_day} steps: {day_dagster:.1f} s"
            )
            print(
                f"{backend}: a day's worth in {total:.1f} s "
                f"(target < {DAY_TARGET_SECONDS:.0f} s) {verdict(met)}"
            )
        if times.waits:
            longest = max(times.waits)
            met = longest < WAIT_TARGET_SECONDS
            ok &= met
            print(
                f"{backend}: step writes during housekeeping: {len(times.waits)}, median "
                f"{statistics.median(times.waits) * 1000:.1f} ms, longest "
                f"{longest * 1000:.0f} ms (target < {WAIT_TARGET_SECONDS * 1000:.0f} ms) "
                f"{verdict(met)}"
            )
        shared_perfdb(dbs["with"].engine.url.render_as_string(hide_password=False)).dispose()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=100, help="objects in the fleet")
    parser.add_argument("--alarms", type=int, default=20, help="alarms per object")
    parser.add_argument("--days", type=int, default=365, help="simulated days (last checkpoint)")
    parser.add_argument(
        "--real-steps", type=int, default=200, help="steps run through Dagster for real"
    )
    parser.add_argument("--keep-finished", type=int, default=90, help="days Finished jobs stay")
    parser.add_argument("--keep-failed", type=int, default=365, help="days Failed jobs stay")
    parser.add_argument(
        "--backend", choices=("postgresql", "sqlite"), action="append", help="default: both"
    )
    args = parser.parse_args()
    print(
        f"a daily job of {args.objects} objects x {args.alarms} alarms = "
        f"{args.objects * args.alarms} steps, {args.days} days; housekeeping: Finished jobs "
        f"kept {args.keep_finished} days, Failed jobs {args.keep_failed} days"
    )
    ok = True
    with tempfile.TemporaryDirectory() as directory:
        for backend in args.backend or ("postgresql", "sqlite"):
            ok &= run_backend(args, backend, Path(directory))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
