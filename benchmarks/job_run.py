"""A 500-step `JobAlarmCalc` through the standalone `JobInstance.run()`.

100 objects x 5 alarms over 30 days of 10-minute data from the synthetic fleet (its 4 alarms plus
a 5th defined here on `ambient_temperature`), in a scratch PostgreSQL database (and, with
`--sqlite`, a temporary SQLite file). Prints the total time of `run()`, the milliseconds per step
spent reading values, computing, and updating states (finishing a step writes its occurrences in
the same transaction), and the SQL statements, transactions and (on PostgreSQL) network round
trips per step and phase.

Then the read at its bound: a year of 10-minute values of one object's feature (52,560) read by
`PerfDB.values.read` (what a step calls: one statement) against, on PostgreSQL, a binary
`COPY (SELECT timestamp, value ... ORDER BY timestamp) TO STDOUT` of the same rows through
psycopg, both timed per call in the same run (best and median of several), with the ratio.

    .venv/bin/python benchmarks/job_run.py [--sqlite] [--objects N] [--days D] [--profile]

`JOBS_PIPELINE_BENCH_PG_URL` is an admin URL of a PostgreSQL server on which the benchmark
creates and drops a scratch database (default: the local server as root).

Round trips on PostgreSQL are derived from SQLAlchemy events: each statement is one (an
executemany is pipelined into one), and each transaction adds three: the pool's pre-ping on
checkout, the BEGIN that psycopg sends before the first statement, and the COMMIT (a libpq trace
of one `PerfDB` transaction shows exactly these messages).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from scratch import scratch_postgresql  # benchmarks/scratch.py

from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import AlarmSpec, SyntheticFleet, generate_fleet
from jobs_pipeline.jobs import JobAlarmCalc, StepOutcome, create_job, upgrade_database
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState

EXTRA_ALARM = AlarmSpec(
    alarm_id=1005,
    name="Ambient temperature low (icing risk)",
    feature="ambient_temperature",
    operator="<",
    threshold=0.0,
    clear_threshold=1.0,
    min_duration=timedelta(minutes=30),
)
PHASES = ("read", "compute", "state")
# The read at its bound: a year of 10-minute values, read this many times each way.
YEAR_VALUES = 52_560
READ_REPEATS = 15
READ_TARGET_RATIO = 2.0
# Statements SQLite's engine issues itself to open a transaction (see perfdb.engine).
TRANSACTION_STATEMENTS = frozenset({"BEGIN IMMEDIATE"})


class RecordingAlarmCalc(JobAlarmCalc):
    """`JobAlarmCalc` that keeps the outcome of every step `run()` executes."""

    outcomes: list[StepOutcome]

    def _prepare(self) -> None:
        super()._prepare()
        self.outcomes = []

    def execute_step(self, step_id: int, run_id: str | None = None) -> StepOutcome:
        outcome = super().execute_step(step_id, run_id)
        self.outcomes.append(outcome)
        return outcome


class Meter:
    """Attributes SQL statements, transactions and pool checkouts to the phase that issued them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.dialect = engine.dialect.name
        self.current = "job"
        self.statements: Counter[str] = Counter()
        self.transactions: Counter[str] = Counter()
        self.checkouts: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        sa.event.listen(engine, "before_cursor_execute", self._on_statement)
        sa.event.listen(engine, "begin", self._on_begin)
        sa.event.listen(engine.pool, "checkout", self._on_checkout)

    def _on_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement not in TRANSACTION_STATEMENTS:
            self.statements[self.current] += 1

    def _on_begin(self, _conn: Any) -> None:
        self.transactions[self.current] += 1

    def _on_checkout(self, *_args: Any) -> None:
        self.checkouts[self.current] += 1

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        previous, self.current = self.current, name
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1
            self.current = previous

    def wrap(self, owner: object, method: str, name: str) -> None:
        """Runs `owner.method` (an instance attribute shadows the class's) inside `phase(name)`."""
        original: Callable[..., Any] = getattr(owner, method)

        def metered(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return original(*args, **kwargs)

        setattr(owner, method, metered)

    def round_trips(self, phase: str) -> int | None:
        if self.dialect != "postgresql":
            return None  # SQLite runs in-process: there is no network to cross
        return self.statements[phase] + 2 * self.transactions[phase] + self.checkouts[phase]


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="jp_bench_") as directory:
        yield f"sqlite:///{Path(directory) / 'perfdb.sqlite'}"


def prepare(perfdb: PerfDB, fleet: SyntheticFleet) -> int:
    """Migrates, stores the fleet with its alarms, and creates the job; returns its id."""
    started = time.perf_counter()
    upgrade_database(perfdb)
    summary = store_fleet(perfdb, fleet)
    alarm_ids = [spec.alarm_id for spec in fleet.alarms]
    job = create_job(
        perfdb,
        "Alarm Calculation",
        {
            "object_names": fleet.object_names,
            "alarm_ids": alarm_ids,
            "start": fleet.start.isoformat(),
            "end": fleet.end.isoformat(),
        },
        description="benchmark",
    )
    print(
        f"  setup: {summary.values:,} values, {summary.objects} objects, {len(alarm_ids)} alarms "
        f"stored in {time.perf_counter() - started:.1f} s"
    )
    return job.id


def bench(backend: str, url: str, fleet: SyntheticFleet, profile: bool) -> None:
    print(f"{backend}:")
    perfdb = PerfDB.connect(url)
    try:
        job_id = prepare(perfdb, fleet)
        meter = Meter(perfdb.engine)
        meter.wrap(perfdb.values, "read", "read")
        meter.wrap(perfdb.queue, "start_step", "state")
        meter.wrap(perfdb.queue, "finish_step", "state")

        created = time.perf_counter()
        with meter.phase("create"):
            job = RecordingAlarmCalc(job_id, perfdb=perfdb)
        create_seconds = time.perf_counter() - created
        meter.wrap(job, "execute_step", "step")

        profiler = cProfile.Profile() if profile else None
        started = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        failed = job.run()
        if profiler is not None:
            profiler.disable()
        run_seconds = time.perf_counter() - started

        report(perfdb, job, meter, failed, create_seconds, run_seconds)
        if profiler is not None:
            print("  profile of run(), top 25 by cumulative time:")
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        read_at_the_bound(perfdb, url)
    finally:
        perfdb.dispose()


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """Best and median seconds of `READ_REPEATS` calls (after one that warms the caches)."""
    call()
    seconds = []
    for _ in range(READ_REPEATS):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return min(seconds), statistics.median(seconds)


def read_at_the_bound(perfdb: PerfDB, url: str) -> None:
    """A year of one object's feature read per call, beside the binary COPY of the same rows."""
    times = pd.date_range("2024-01-01", periods=YEAR_VALUES, freq="10min", tz="UTC")
    values = np.random.default_rng(0).normal(1000.0, 250.0, YEAR_VALUES)
    values[::97] = np.nan
    perfdb.values.import_frame(
        pd.DataFrame({"object": "YEAR-01", "feature": "year_power", "timestamp": times}).assign(
            value=values
        )
    )
    object_id = perfdb.catalog.object_ids(["YEAR-01"])["YEAR-01"]
    feature_id = perfdb.catalog.get_feature("year_power").id
    start, end = times[0].to_pydatetime(), (times[-1] + pd.Timedelta(minutes=10)).to_pydatetime()
    read = perfdb.values.read(object_id, feature_id, start, end)
    assert len(read) == YEAR_VALUES and int(read.isna().sum()) == int(np.isnan(values).sum())
    best, median = timed(lambda: perfdb.values.read(object_id, feature_id, start, end))
    print(
        f"  read of a year ({YEAR_VALUES:,} values) per call: {1000 * best:.1f} ms best, "
        f"{1000 * median:.1f} ms median, {YEAR_VALUES / best:,.0f} values/s"
    )
    if perfdb.engine.dialect.name != "postgresql":
        print("  (no COPY on SQLite: no bound to compare with)")
        return
    statement = (
        "COPY (SELECT timestamp, value FROM feature_values WHERE object_id = %s"
        " AND feature_id = %s AND timestamp >= %s AND timestamp < %s ORDER BY timestamp)"
        " TO STDOUT (FORMAT binary)"
    )
    plain = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as connection:

        def copy_out() -> bytes:
            with (
                connection.cursor() as cursor,
                cursor.copy(statement, (object_id, feature_id, start, end)) as copy,
            ):
                return b"".join(copy)

        bound_best, bound_median = timed(copy_out)
    ratio = best / bound_best
    verdict = "met" if ratio <= READ_TARGET_RATIO else "MISSED"
    print(
        f"  bound: binary COPY of the same rows through psycopg: {1000 * bound_best:.1f} ms best, "
        f"{1000 * bound_median:.1f} ms median; read / bound = {ratio:.2f}x "
        f"(median {median / bound_median:.2f}x; target <= {READ_TARGET_RATIO:g}x: {verdict})"
    )


def report(
    perfdb: PerfDB,
    job: RecordingAlarmCalc,
    meter: Meter,
    failed: list[int],
    create_seconds: float,
    run_seconds: float,
) -> None:
    outcomes = job.outcomes
    steps = len(outcomes)
    final = perfdb.queue.get_job(job.job_id)
    occurrences = sum(outcome.details.get("occurrences_written", 0) for outcome in outcomes)
    samples = sum(outcome.details.get("samples_read", 0) for outcome in outcomes)
    print(
        f"  job {final.id}: {final.state.label}, {steps} steps, {len(failed)} failed, "
        f"{samples:,} samples read, {occurrences:,} occurrences written"
    )
    assert final.state == JobState.FINISHED and not failed, final.comment

    def per_step_ms(key: str) -> float:
        return 1000 * sum(outcome.details[key] for outcome in outcomes) / steps

    # read/compute come from the step's own details; "state" is start_step + finish_step (which
    # writes the occurrences in its transaction) as measured around the calls.
    ms = {
        "read": per_step_ms("read_seconds"),
        "compute": per_step_ms("compute_seconds"),
        "state": 1000 * meter.seconds["state"] / steps,
    }
    accounted = sum(ms.values()) * steps / 1000
    print(f"  steps created in the constructor: {create_seconds:.2f} s")
    print(
        f"  run(): {run_seconds:.2f} s total, {1000 * run_seconds / steps:.2f} ms per step "
        f"({run_seconds - accounted:.2f} s outside the three phases: claim, finalise, Python)"
    )
    print(
        f"  {'per step':<10}{'ms':>8}{'share':>8}{'statements':>12}{'transactions':>14}"
        f"{'round trips':>13}"
    )
    for phase in PHASES:
        print(
            f"  {phase:<10}{ms[phase]:>8.2f}{ms[phase] / (1000 * run_seconds / steps):>8.0%}"
            f"{meter.statements[phase] / steps:>12.2f}{meter.transactions[phase] / steps:>14.2f}"
            f"{per_step(meter.round_trips(phase), steps):>13}"
        )
    total_statements = sum(meter.statements[phase] for phase in PHASES)
    trips = [meter.round_trips(phase) for phase in PHASES]
    total_round_trips = None if None in trips else sum(trip or 0 for trip in trips)
    print(
        f"  {'all':<10}{sum(ms.values()):>8.2f}{'':>8}{total_statements / steps:>12.2f}"
        f"{sum(meter.transactions[phase] for phase in PHASES) / steps:>14.2f}"
        f"{per_step(total_round_trips, steps):>13}"
    )
    print(
        f"  (state without start_step, as the details time it: "
        f"{per_step_ms('state_update_seconds'):.2f} ms)"
    )
    print(
        f"  statements in steps outside the phases: {meter.statements['step']}; job level: "
        f"{meter.statements['create']} creating steps, {meter.statements['job']} in run()"
    )
    reads_ok = meter.statements["read"] == meter.calls["read"] == steps
    print(f"  reading is one statement per step: {'yes' if reads_ok else 'NO'}")


def per_step(count: int | None, steps: int) -> str:
    return "-" if count is None else f"{count / steps:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="also run on a temp SQLite file")
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--profile", action="store_true", help="cProfile run() and print it")
    args = parser.parse_args()

    started = time.perf_counter()
    fleet = generate_fleet(objects=args.objects, days=args.days)
    fleet = replace(fleet, alarms=[*fleet.alarms, EXTRA_ALARM])
    print(
        f"fleet: {len(fleet.object_names)} objects x {args.days} days, {len(fleet.values):,} "
        f"values, generated in {time.perf_counter() - started:.1f} s"
    )
    with scratch_postgresql() as url:
        bench("postgresql", url, fleet, args.profile)
    if args.sqlite:
        with sqlite_database() as url:
            bench("sqlite", url, fleet, args.profile)


if __name__ == "__main__":
    main()
