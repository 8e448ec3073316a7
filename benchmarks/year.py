"""A year of a daily fleet job, with and without housekeeping, on PostgreSQL and SQLite.

One Alarm Calculation job a day over `--objects` objects x `--alarms` alarms (default 100 x 20:
2,000 steps, 6,004 history rows and 200 occurrences a day; one day in twenty the job fails with
1 % of its steps failed). The year is written straight into the tables (PostgreSQL: COPY;
SQLite: executemany), not run through Dagster, which at some 27 ms a step would take hours. Two
databases per backend get the same days: one keeps everything, the other runs housekeeping
(Finished jobs kept 90 days, Failed 365) after every simulated day, as the daily schedule would,
with the simulated day's end as its clock (`as_of`).

On days 1, 90, 180 and 365 both databases report: the queue sensor's query, one reconciler
sweep, the cost of one step's writes (start and finish of a step of a Running job made through
the state machine), `job show` of the day's 2,000-step job and `job list` (the queries those
commands run), each the median of many calls after a warm-up; the jobs and job-table rows kept;
the size of the job tables and their indexes. With housekeeping, day 365 must be within 1.2x of
day 90:

- the timed calls, against a page-for-page copy of the database taken on day 90 and timed in
  alternation with it on day 365 (`year_probes.py`): the median of the rounds' ratios. Timed
  hours apart, the same call moves by more than 1.2x with this shared machine's other work.
- `job list` per listed job: it reads every kept job, and Failed jobs kept 365 days against
  Finished ones kept 90 make day 365 hold more jobs than day 90 (about 13 more Failed days).
- sizes per kept job-table row, for the same reason. With equal keep times
  (`--keep-failed 90`) the kept rows, and so the plain figures, stay the same.

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
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from scratch import scratch_postgresql  # benchmarks/scratch.py
from year_probes import (  # benchmarks/year_probes.py
    ALARM_CALC,
    HOT_PATH,
    Fleet,
    Paired,
    Probes,
    medians,
    paired,
    running_job,
    snapshot,
)
from year_seed import DAY_ZERO, JOB_TABLES, seed_days  # benchmarks/year_seed.py

from jobs_pipeline.jobs import create_job, upgrade_database
from jobs_pipeline.orchestration.housekeeping import count_events, delete_run, run_housekeeping
from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, STEP_IO_MANAGER_KEY
from jobs_pipeline.orchestration.resources import PerfDBResource, shared_perfdb
from jobs_pipeline.orchestration.sensors import run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.housekeeping import Retention

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

FEATURE = "temperature"
FIRST_ALARM = 5001
CHECKPOINTS = (1, 90, 180, 365)
FLAT_TARGET = 1.2
# Occurrences stay when their jobs go: they grow by design and have no flatness target.
RESULTS = "results bytes (kept)"
DAY_TARGET_SECONDS = 60.0
WAIT_TARGET_SECONDS = 1.0
# Counts of what the database keeps: with Failed jobs kept longer than Finished ones, they grow
# from day 90 to day 365 by design, and what reads every kept row grows with them.
KEPT_JOBS = "kept jobs"
KEPT_ROWS = "kept job-table rows"


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


# --- figures ---------------------------------------------------------------------------------


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


def kept_rows(perfdb: PerfDB) -> tuple[int, int]:
    """(jobs, rows of the three job tables) the database holds."""
    with perfdb.engine.connect() as connection:
        counts = {
            table: connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            for table in JOB_TABLES[:3]
        }
    return counts["job_instances"], sum(counts.values())


def figures(
    perfdb: PerfDB, fleet: Fleet, instance: dg.DagsterInstance, day: int
) -> dict[str, float]:
    """The figures of one database on one day (seconds: medians; bytes; row counts)."""
    probes = Probes(perfdb, fleet, instance, day)
    try:
        timed = medians(probes)
    finally:
        probes.close()
    jobs, rows = kept_rows(perfdb)
    tables, indexes = table_sizes(perfdb, JOB_TABLES[:3])
    results, result_indexes = table_sizes(perfdb, JOB_TABLES[3:])
    return {
        **timed,
        KEPT_JOBS: jobs,
        KEPT_ROWS: rows,
        "job tables bytes": tables,
        "job indexes bytes": indexes,
        RESULTS: results + result_indexes,
    }


def paired_figures(
    now: PerfDB, then: PerfDB, fleet: Fleet, instance: dg.DagsterInstance, days: tuple[int, int]
) -> dict[str, Paired]:
    """Each timed call on `now` (its day `days[0]`) against `then`, a copy of the same database
    taken on day `days[1]`, timed in alternation."""
    with ExitStack() as stack:
        probes = [
            Probes(db, fleet, instance, day) for db, day in zip((now, then), days, strict=True)
        ]
        for probe in probes:
            stack.callback(probe.close)
        return paired(*probes)


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
    if name.startswith("kept"):
        return f"{value:,.0f}"
    return f"{value * 1000:.2f} ms"


def flatness(
    name: str, ratio: float, kept: float, listed: float, timed: Paired | None
) -> tuple[str, bool]:
    """The verdict on one figure's growth from day 90 to the last day, with housekeeping:
    `ratio` of the figure, `kept` of the kept job-table rows, `listed` of the kept jobs; timed
    figures use `timed`, the paired comparison with the day-90 copy."""
    if name == RESULTS:
        return f"{ratio:.2f}x (no target: results stay)", True
    if name.startswith("kept"):
        return f"{ratio:.2f}x (no target: Failed jobs stay longer)", True
    if "bytes" in name:
        per_row = ratio / kept
        met = per_row <= FLAT_TARGET
        return f"{ratio:.2f}x, per kept row {per_row:.2f}x {verdict(met)}", met
    # A year too short for a later checkpoint has no paired comparison: the plain ratio.
    timed_ratio = ratio if timed is None else timed.ratio
    if name in HOT_PATH:
        met = timed_ratio <= FLAT_TARGET
        return f"{timed_ratio:.2f}x {verdict(met)}", met
    per_job = timed_ratio / listed
    met = per_job <= FLAT_TARGET
    return f"{timed_ratio:.2f}x, per listed job {per_job:.2f}x {verdict(met)}", met


def report_figures(
    backend: str,
    table: dict[str, dict[int, dict[str, float]]],
    pairs: dict[str, Paired],
    checkpoints: Sequence[int],
    base: int,
) -> bool:
    ok = True
    last = checkpoints[-1]
    print(f"\n{backend}: figures by simulated day (without housekeeping | with housekeeping)")
    names = list(table["without"][checkpoints[0]])
    header = "".join(f"{'day ' + str(day):>22}" for day in checkpoints)
    print(f"{'':24}{header}   with: day {last} / day {base} (target {FLAT_TARGET}x); without")
    with_ = table["with"]
    kept = with_[last][KEPT_ROWS] / with_[base][KEPT_ROWS]
    listed = with_[last][KEPT_JOBS] / with_[base][KEPT_JOBS]
    for name in names:
        cells = "".join(
            f"{show_value(name, table['without'][d][name]) + ' | ' + show_value(name, with_[d][name]):>22}"  # noqa: E501
            for d in checkpoints
        )
        ratio = with_[last][name] / with_[base][name]
        grown = table["without"][last][name] / table["without"][base][name]
        text, met = flatness(name, ratio, kept, listed, pairs.get(name))
        ok &= met
        print(f"{name:24}{cells}   {text}; without: {grown:.2f}x")
    if not pairs:
        return ok
    print(
        f"{backend}: timed calls, day {last} against the copy of day {base} in alternation "
        f"(medians; ratio: median of the rounds' ratios):"
    )
    for name, pair in pairs.items():
        print(
            f"  {name:22} day {base} {pair.then * 1000:8.2f} ms   day {last} "
            f"{pair.now * 1000:8.2f} ms   {pair.ratio:.2f}x"
        )
    return ok


def run_backend(args: argparse.Namespace, backend: str, directory: Path) -> bool:
    retention = Retention(
        keep_finished=timedelta(days=args.keep_finished),
        keep_failed=timedelta(days=args.keep_failed),
    )
    checkpoints = [day for day in CHECKPOINTS if day < args.days] + [args.days]
    checkpoints = sorted(set(checkpoints))
    # The day the last one is compared with (90, or the second checkpoint of a shorter year).
    base = 90 if 90 in checkpoints else checkpoints[min(1, len(checkpoints) - 1)]
    copy: PerfDB | None = None
    pairs: dict[str, Paired] = {}
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
            if checkpoint == base:
                copy = stack.enter_context(snapshot(dbs["with"], directory, f"day{base}"))
            elif checkpoint == checkpoints[-1] and copy is not None:
                pairs = paired_figures(
                    dbs["with"], copy, fleets["with"], instance, (checkpoint, base)
                )
            print(f"{backend}: day {checkpoint} measured", file=sys.stderr)
        ok &= report_figures(backend, table, pairs, checkpoints, base)
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
