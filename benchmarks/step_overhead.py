"""What Dagster costs per step of a 200-step job: the runs (a) to (c) of `orchestration.py`,
interleaved and requeued in between, their table, and with `--profile` where the time goes."""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.definitions.reconstruct import ReconstructableJob
from scratch import admin_engine, scratch_postgresql
from sqlalchemy.engine import make_url
from timed_runs import (
    check_finished,
    create_alarm_job,
    multiprocess_job,
    own_time_by_component,
    production_job,
    run_dagster,
    run_standalone,
)

from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import generate_fleet
from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.orchestration.instance_storage import dagster_postgres_url
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.settings import PERFDB_URL
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    DAGSTER_PG_URL_ENV,
    dagster_environment,
    environment_variables,
    instance_for_environment,
    make_dagster_home,
)

OVERHEAD_TARGET_MS = 20.0
LABELS = {
    "a": "(a)  JobInstance.run(), standalone",
    "b": "(b)  Dagster in-process, pooled PostgreSQL storage",
    "b'": "(b') Dagster in-process, stock dagster-postgres storage",
    'b"': '(b") as (b), Dagster database synchronous_commit=off',
    "c": "(c)  Dagster multiprocess executor, pooled storage",
}


@dataclass
class Variant:
    label: str
    seconds: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def without_synchronous_commit(url: str) -> None:
    """Commits on this database stop waiting for their WAL flush (a crash may lose the last
    fraction of a second of commits, never consistency)."""
    admin = admin_engine()
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f"ALTER DATABASE {make_url(url).database} SET synchronous_commit = off"
        )
    admin.dispose()


def prepare(perfdb: PerfDB, objects: int, days: int) -> int:
    started = time.perf_counter()
    fleet = generate_fleet(objects=objects, days=days)
    upgrade_database(perfdb)
    summary = store_fleet(perfdb, fleet)
    job_id = create_alarm_job(perfdb, fleet, "orchestration benchmark")
    print(
        f"setup: {summary.objects} objects x {summary.alarms} alarms over {days} days, "
        f"{summary.values:,} values, in {time.perf_counter() - started:.1f} s"
    )
    return job_id


def open_instances(
    scratch: Path, perf_url: str, stack: ExitStack
) -> tuple[dict[str, dg.DagsterInstance], str]:
    """The instances of (b), (b') and (b"), each on a scratch database of its own; and the URL
    of the pooled one's, (b)'s."""

    def stock_storage(url: str) -> Callable[[dict[str, Any]], None]:
        def edit(config: dict[str, Any]) -> None:
            config["storage"] = {"postgres": {"postgres_url": dagster_postgres_url(url)}}

        return edit

    urls = {
        key: stack.enter_context(scratch_postgresql(prefix))
        for key, prefix in (
            ("b", "jp_bench_dagster"),
            ("b'", "jp_bench_dagster_stock"),
            ('b"', "jp_bench_dagster_async"),
        )
    }
    without_synchronous_commit(urls['b"'])
    homes = {
        "b": make_dagster_home(scratch / "pooled"),
        "b'": make_dagster_home(scratch / "stock", edit=stock_storage(urls["b'"])),
        'b"': make_dagster_home(scratch / "async"),
    }
    instances = {
        key: stack.enter_context(
            instance_for_environment(dagster_environment(homes[key], perf_url, urls[key]))
        )
        for key in homes
    }
    return instances, urls["b"]


def bench_runs(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> None:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_perf"))
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
    instances, pooled_url = open_instances(scratch, perf_url, stack)
    # The ops' PerfDBResource reads PERFDB_URL, `EnvironmentStorage` DAGSTER_PG_URL; the step
    # processes of the multiprocess executor inherit both.
    stack.enter_context(
        environment_variables({PERFDB_URL.name: perf_url, DAGSTER_PG_URL_ENV: pooled_url})
    )
    job_id = prepare(perfdb, args.objects, args.days)
    production = production_job()
    runners: dict[str, Callable[[], tuple[float, int]]] = {
        "a": lambda: run_standalone(perfdb, job_id),
        **{
            key: lambda instance=instance: run_dagster(perfdb, job_id, instance, production)
            for key, instance in instances.items()
        },
    }
    if args.pooled_only:
        del runners["b'"], runners['b"']
    variants = {key: Variant(label) for key, label in LABELS.items()}
    # One unmeasured run of each: creates the steps, warms caches, imports and the storages.
    for runner in runners.values():
        runner()
    steps = check_finished(perfdb, job_id)
    print(f"job {job_id}: {steps} steps; timing {args.repeat} runs of each, interleaved")
    for _ in range(args.repeat):
        for key, runner in runners.items():
            seconds, events = runner()
            check_finished(perfdb, job_id, steps)
            variants[key].seconds.append(seconds)
            variants[key].events.append(events)
    if args.multiprocess:
        print("multiprocess executor: one run (a process per step)...")
        seconds, events = run_dagster(perfdb, job_id, instances["b"], multiprocess_job())
        check_finished(perfdb, job_id, steps)
        variants["c"].seconds.append(seconds)
        variants["c"].events.append(events)

    report_runs(variants, steps)
    if args.profile:
        profile_in_process(perfdb, job_id, instances["b"], production, variants["a"].median)


def report_runs(variants: dict[str, Variant], steps: int) -> None:
    base = variants["a"].median
    print()
    print(f"{steps} steps; median wall time over the timed runs")
    header = (
        f"{'variant':<56}{'runs':>5}{'wall s':>9}{'ms/step':>9}{'x (a)':>8}"
        f"{'overhead ms/step':>18}{'events/step':>13}"
    )
    print(header)
    print("-" * len(header))
    for key, variant in variants.items():
        if not variant.seconds:
            continue
        wall = variant.median
        overhead = "" if key == "a" else f"{1000 * (wall - base) / steps:.1f}"
        events = "" if key == "a" else f"{statistics.median(variant.events) / steps:.1f}"
        print(
            f"{variant.label:<56}{len(variant.seconds):>5}{wall:>9.2f}"
            f"{1000 * wall / steps:>9.1f}{wall / base:>7.2f}x{overhead:>18}{events:>13}"
        )
    in_process = 1000 * (variants["b"].median - base) / steps
    verdict = "met" if in_process <= OVERHEAD_TARGET_MS else "MISSED"
    print(
        f"Dagster overhead in-process on pooled PostgreSQL storage: {in_process:.1f} ms/step "
        f"(target <= {OVERHEAD_TARGET_MS:.0f} ms: {verdict}); (b) / (a) = "
        f"{variants['b'].median / base:.2f}x"
    )
    if variants["b'"].seconds:
        stock = 1000 * (variants["b'"].median - base) / steps
        print(
            f"on stock dagster-postgres storage: {stock:.1f} ms/step; pooling saves "
            f"{stock - in_process:.1f} ms/step"
        )


class StorageMeter:
    """Times what the Dagster event log storage does: `store_event` calls, the statements they
    send by first keyword, and the pool's pre-ping on each connection checkout."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        storage: Any = instance.event_log_storage
        engine = storage._engine  # the same private attribute `instance_storage` relies on
        self.events = 0
        self.event_seconds = 0.0
        self.statements: Counter[str] = Counter()
        self.statement_seconds: defaultdict[str, float] = defaultdict(float)
        self._started: list[float] = []
        original_store = storage.store_event
        original_ping = engine.dialect.do_ping

        def store_event(event: Any) -> None:
            started = time.perf_counter()
            try:
                original_store(event)
            finally:
                self.events += 1
                self.event_seconds += time.perf_counter() - started

        def do_ping(dbapi_connection: Any) -> bool:
            started = time.perf_counter()
            try:
                return original_ping(dbapi_connection)
            finally:
                self.statements["(pre-ping)"] += 1
                self.statement_seconds["(pre-ping)"] += time.perf_counter() - started

        def before(*_args: Any) -> None:
            self._started.append(time.perf_counter())

        def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            keyword = statement.split(None, 1)[0].upper()
            self.statements[keyword] += 1
            self.statement_seconds[keyword] += time.perf_counter() - self._started.pop()

        storage.store_event = store_event  # type: ignore[method-assign]
        engine.dialect.do_ping = do_ping  # type: ignore[method-assign]
        sa.event.listen(engine, "before_cursor_execute", before)
        sa.event.listen(engine, "after_cursor_execute", after)


def profile_in_process(
    perfdb: PerfDB,
    job_id: int,
    instance: dg.DagsterInstance,
    job: ReconstructableJob,
    standalone_seconds: float,
) -> None:
    meter = StorageMeter(instance)
    seconds, _ = run_dagster(perfdb, job_id, instance, job)
    steps = len(perfdb.queue.get_steps(job_id))
    overhead = seconds - standalone_seconds
    print(
        f"\none in-process run, not profiled: {seconds:.2f} s, "
        f"{overhead * 1000 / steps:.1f} ms/step over (a); {meter.events} events "
        f"({meter.events / steps:.1f}/step) stored in "
        f"{meter.event_seconds:.2f} s = {1000 * meter.event_seconds / steps:.1f} ms/step "
        f"({meter.event_seconds / overhead:.0%} of the overhead)"
    )
    print(f"  {'Dagster storage statement':<28}{'per event':>10}{'ms each':>9}{'ms/step':>9}")
    for keyword, count in meter.statements.most_common():
        spent = meter.statement_seconds[keyword]
        print(
            f"  {keyword:<28}{count / meter.events:>10.2f}{1000 * spent / count:>9.3f}"
            f"{1000 * spent / steps:>9.2f}"
        )

    profiler = cProfile.Profile()
    seconds, _ = run_dagster(perfdb, job_id, instance, job, profiler)
    stats = pstats.Stats(profiler)
    own = own_time_by_component(stats)
    total = sum(own.values())
    print(f"\none run under cProfile ({seconds:.2f} s; profiling inflates Python-heavy parts)")
    print(f"  {'own time by component':<44}{'s':>7}{'share':>7}{'ms/step':>9}")
    for name, spent in own.items():
        print(f"  {name:<44}{spent:>7.2f}{spent / total:>7.0%}{1000 * spent / steps:>9.1f}")
    print("  top 15 functions by own time:")
    stats.sort_stats("tottime").print_stats(15)
