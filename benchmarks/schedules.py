"""Times the scheduler: a sensor tick over many enabled schedules when nothing is due, and a
backfill of a year of daily periods for one schedule, on PostgreSQL and SQLite.

The tick is what the `perfdb_scheduler` sensor does on every evaluation (`run_scheduler_tick`:
the database clock, the due schedules from their index, nothing else when none is due), timed
as the median of `--ticks` ticks, and once more through Dagster's sensor evaluation. The
backfill creates one Queued job (and its ledger row and history row) per Berlin day of 2023,
in one transaction.

Run: ``python benchmarks/schedules.py [--schedules 1000] [--ticks 50]``. Targets: a tick under
100 ms with 1,000 schedules; a year's backfill within 5 s. Each figure is printed with its ratio
to the target; the exit code is 1 when a target is missed. PostgreSQL: a scratch database on
`JOBS_PIPELINE_BENCH_PG_URL` (default: the local server as root), dropped afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import dagster as dg
from scratch import scratch_postgresql  # benchmarks/scratch.py

from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.orchestration.resources import PerfDBResource, shared_perfdb
from jobs_pipeline.orchestration.scheduler import SCHEDULER_NAME, run_scheduler_tick
from jobs_pipeline.perfdb import PerfDB

TICK_TARGET_SECONDS = 0.100
BACKFILL_TARGET_SECONDS = 5.0
EVERY = ("15min", "hour", "day", "week", "month")
PARAMETERS = {"object_names": ["WT-01", "WT-02", "WT-03"], "alarm_ids": [7001, 7002]}


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "postgresql":
        with scratch_postgresql("jp_bench_schedules") as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / 'perfdb.sqlite'}"


def make_schedules(db: PerfDB, count: int) -> None:
    """`count` enabled schedules of every unit, whose current periods have not ended: a tick
    finds nothing due (one tick first plans them all)."""
    now = db.schedules.clock()
    for i in range(count):
        db.schedules.create(
            f"schedule-{i:05d}",
            "Alarm Calculation",
            PARAMETERS,
            EVERY[i % len(EVERY)],
            timezone=("Europe/Berlin", "America/New_York", "UTC")[i % 3],
            delay=timedelta(minutes=5),
            start=now.isoformat(),
        )
    run_scheduler_tick(db)


def time_ticks(db: PerfDB, url: str, ticks: int) -> tuple[float, float, str]:
    seconds = []
    summary = ""
    for _ in range(ticks):
        started = time.perf_counter()
        summary = run_scheduler_tick(db)
        seconds.append(time.perf_counter() - started)
    sensor = next(s for s in defs.sensors or [] if s.name == SCHEDULER_NAME)  # type: ignore[union-attr]
    resource = PerfDBResource(url=url)
    evaluated = []
    with dg.DagsterInstance.ephemeral() as instance:
        for _ in range(ticks):
            context = dg.build_sensor_context(resources={"perfdb": resource}, instance=instance)
            started = time.perf_counter()
            sensor(context)
            evaluated.append(time.perf_counter() - started)
    shared_perfdb(url).dispose()
    return statistics.median(seconds), statistics.median(evaluated), summary


def time_backfill(db: PerfDB) -> tuple[float, int]:
    db.schedules.create(
        "year-daily", "Alarm Calculation", PARAMETERS, "day", timezone="Europe/Berlin"
    )
    started = time.perf_counter()
    outcome = db.schedules.backfill("year-daily", "2023-01-01", "2024-01-01", actor="user:bench")
    return time.perf_counter() - started, len(outcome.created)


def verdict(seconds: float, target: float) -> str:
    return f"{seconds / target:.3f}x the target ({'met' if seconds <= target else 'MISSED'})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), action="append")
    args = parser.parse_args()
    missed = False
    for backend in args.backend or ("postgresql", "sqlite"):
        with database(backend) as url:
            db = PerfDB.connect(url)
            upgrade_database(db)
            made = time.perf_counter()
            make_schedules(db, args.schedules)
            made = time.perf_counter() - made
            tick, evaluated, summary = time_ticks(db, url, args.ticks)
            backfill, jobs = time_backfill(db)
            db.dispose()
        print(f"{backend}: {args.schedules} enabled schedules created in {made:.1f} s")
        print(
            f"  tick, nothing due ({summary}): {tick * 1000:.1f} ms median of {args.ticks}, "
            f"{verdict(tick, TICK_TARGET_SECONDS)}; through Dagster's sensor evaluation "
            f"{evaluated * 1000:.1f} ms"
        )
        print(
            f"  backfill of 2023, daily: {jobs} jobs in {backfill:.2f} s "
            f"({backfill / jobs * 1000:.1f} ms per period), "
            f"{verdict(backfill, BACKFILL_TARGET_SECONDS)}"
        )
        missed |= tick > TICK_TARGET_SECONDS or backfill > BACKFILL_TARGET_SECONDS
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
