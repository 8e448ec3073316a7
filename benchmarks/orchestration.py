"""What Dagster costs per step: one 200-step `JobAlarmCalc` run standalone and through Dagster.

The job covers the synthetic fleet's 50 objects x 4 alarms over 30 days, in a scratch PostgreSQL
performance database. It runs, requeued in between (requeueing a Finished job resets its steps):

  (a)  standalone, `JobInstance.run()`;
  (b)  through Dagster in this process: the code location's `perfdb_job` (in-process executor)
       with `execute_job`, on the production instance configuration (`dagster.yaml`:
       `EnvironmentStorage`, pooled connections to a scratch PostgreSQL database via
       `DAGSTER_PG_URL`);
  (b') the same on dagster-postgres's stock storage (`storage: postgres`), to show what the
       pooled storage saves;
  (b") the same as (b) with `synchronous_commit = off` on the Dagster database (an experiment:
       Dagster commits every event on its own, and each commit waits for a WAL flush);
  (c)  the same graph with the multiprocess executor (one process per step), pooled storage.

Then a one-step job goes through a real `dagster-daemon run -w workspace.yaml`: the median over
five requeues of queued -> job started (its run claimed it), queued -> the run's RUN_START, and
queued -> job Finished.

    .venv/bin/python benchmarks/orchestration.py [--objects N] [--days D] [--repeat R]
        [--no-multiprocess] [--no-daemon] [--profile] [--workspace FILE]

With `--steps N [N ...]` it measures scale instead: for each N, a job of N steps (objects x alarms;
10,000 = 500 objects x 20 alarms, the fleet's four and copies of them under other ids; `--days`
defaults to 3) runs standalone, then through Dagster in a run-worker process of its own
(`execute_job` of the production `perfdb_job`, pooled PostgreSQL storage, step ops in the pool
`perfdb`), and for N up to `--no-pool-up-to` once more on an instance without the pool's limit. It
prints overhead per step against standalone and its growth over the smallest N, the plan op's time
per step, the summary op's time, the run worker's peak RSS (VmHWM), events per step by type, and
the time `dagster-webserver` (started on the benchmark's instance) takes to answer the run page's
queries (`run_page.graphql`: the run, the first 1,000 events, the step stats), with the targets
and `met`/`MISSED`. `--profile` adds one cProfiled run per N. Example:

    .venv/bin/python benchmarks/orchestration.py --steps 200 2000 10000 2>/dev/null

Dagster logs every event to stderr (`2>/dev/null` keeps just the tables); (c) starts a process per
step and takes minutes (`--no-multiprocess` skips it). `--profile` runs (b) once more with the
event storage's statements timed, and once under cProfile, and prints where the time goes.
`--workspace` gives the daemon another code location, e.g. to try other sensor settings.
`JOBS_PIPELINE_BENCH_PG_URL` is an admin URL of a PostgreSQL server on which the benchmark
creates and drops its scratch databases (default: the local server as root).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import os
import pstats
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository
from sqlalchemy.engine import make_url

from jobs_pipeline.calc.synthetic_fleet import generate_fleet
from jobs_pipeline.jobs import JobAlarmCalc, create_job, upgrade_database
from jobs_pipeline.orchestration.instance_storage import dagster_postgres_url
from jobs_pipeline.orchestration.io_manager import StepIdIOManager
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, STEP_IO_MANAGER_KEY, perfdb_job_graph
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.sensors import run_tags
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.demo import store_fleet
from jobs_pipeline.perfdb.engine import PERFDB_URL_ENV, PROJECT_ROOT
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState

# Dagster's multiprocess executor loads this file by path in each step process: make the
# sibling helper importable there too.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from scratch import admin_engine, scratch_postgresql

INSTANCE_CONFIG = PROJECT_ROOT / "dagster.yaml"
WORKSPACE_FILE = PROJECT_ROOT / "workspace.yaml"
# Next to the running interpreter (not resolved: a virtual environment's python is a link).
DAGSTER_DAEMON = Path(sys.executable).parent / "dagster-daemon"
DAGSTER_PG_URL_ENV = "DAGSTER_PG_URL"
ALARM_CALC = "Alarm Calculation"
OVERHEAD_TARGET_MS = 20.0
LAUNCH_TARGET_SECONDS = 4.0
DAEMON_SAMPLES = 5
DAEMON_TIMEOUT = 120.0


def multiprocess_perfdb_job() -> dg.JobDefinition:
    """(c): the production graph and resources with the multiprocess executor; a module-level
    function, so that `reconstructable` can build it again in each step's process."""
    return perfdb_job_graph.to_job(
        name="perfdb_job_multiprocess",
        resource_defs={"perfdb": PerfDBResource(), STEP_IO_MANAGER_KEY: StepIdIOManager()},
        executor_def=dg.multiprocess_executor,
    )


@dataclass
class Variant:
    label: str
    seconds: list[float] = field(default_factory=list)
    events: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


# --- scratch databases and Dagster homes -------------------------------------------------------


def without_synchronous_commit(url: str) -> None:
    """Commits on this database stop waiting for their WAL flush (a crash may lose the last
    fraction of a second of commits, never consistency)."""
    admin = admin_engine()
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f"ALTER DATABASE {make_url(url).database} SET synchronous_commit = off"
        )
    admin.dispose()


def production_home(directory: Path) -> Path:
    """A Dagster home with the repository's `dagster.yaml` (storage from `DAGSTER_PG_URL`)."""
    directory.mkdir(parents=True)
    shutil.copyfile(INSTANCE_CONFIG, directory / "dagster.yaml")
    return directory


def stock_postgres_home(directory: Path, url: str) -> Path:
    """The repository's `dagster.yaml` with dagster-postgres's own storage instead."""
    directory.mkdir(parents=True)
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    config["storage"] = {"postgres": {"postgres_url": dagster_postgres_url(url)}}
    (directory / "dagster.yaml").write_text(yaml.safe_dump(config))
    return directory


# --- the job -----------------------------------------------------------------------------------


def prepare(perfdb: PerfDB, objects: int, days: int) -> int:
    started = time.perf_counter()
    fleet = generate_fleet(objects=objects, days=days)
    upgrade_database(perfdb)
    summary = store_fleet(perfdb, fleet)
    job = create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": fleet.object_names,
            "alarm_ids": [alarm.alarm_id for alarm in fleet.alarms],
            "start": fleet.start.isoformat(),
            "end": fleet.end.isoformat(),
        },
        description="orchestration benchmark",
    )
    print(
        f"setup: {summary.objects} objects x {summary.alarms} alarms over {days} days, "
        f"{summary.values:,} values, in {time.perf_counter() - started:.1f} s"
    )
    return job.id


def check_finished(perfdb: PerfDB, job_id: int, steps: int | None = None) -> int:
    job = perfdb.queue.get_job(job_id)
    states = [step.state for step in perfdb.queue.get_steps(job_id)]
    if job.state != JobState.FINISHED or set(states) != {JobState.FINISHED}:
        raise RuntimeError(f"job {job_id} ended {job.state.label}: {job.comment}")
    if steps is not None and len(states) != steps:
        raise RuntimeError(f"job {job_id} has {len(states)} steps, expected {steps}")
    return len(states)


def run_config(job_id: int) -> dict[str, Any]:
    return {"ops": {PLAN_OP_NAME: {"config": {"job_id": job_id}}}}


def run_standalone(perfdb: PerfDB, job_id: int) -> tuple[float, int]:
    perfdb.queue.queue_job(job_id, actor="benchmark")
    started = time.perf_counter()
    failed = JobAlarmCalc(job_id, perfdb=perfdb).run()
    seconds = time.perf_counter() - started
    if failed:
        raise RuntimeError(f"{len(failed)} steps failed")
    return seconds, 0


def run_dagster(
    perfdb: PerfDB,
    job_id: int,
    instance: dg.DagsterInstance,
    job: dg.ReconstructableJob,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, int]:
    queued = perfdb.queue.queue_job(job_id, actor="benchmark")
    result, seconds = execute_timed(job, instance, queued, profiler)
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed")
    return seconds, len(instance.all_logs(result.run_id))


def execute_timed(
    job: dg.ReconstructableJob,
    instance: dg.DagsterInstance,
    queued: Job,
    profiler: cProfile.Profile | None = None,
) -> tuple[dg.ExecutionResult, float]:
    """One run of the queued job with `execute_job`, as a run worker does; and its seconds."""
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    result = dg.execute_job(job, instance, run_config=run_config(queued.id), tags=run_tags(queued))
    if profiler is not None:
        profiler.disable()
    return result, time.perf_counter() - started


def production_job() -> dg.ReconstructableJob:
    return ReconstructableRepository.for_module(
        "jobs_pipeline.definitions", "defs", str(PROJECT_ROOT)
    ).get_reconstructable_job("perfdb_job")


@contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench_runs(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> None:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_perf"))
    pooled_url = stack.enter_context(scratch_postgresql("jp_bench_dagster"))
    stock_url = stack.enter_context(scratch_postgresql("jp_bench_dagster_stock"))
    async_url = stack.enter_context(scratch_postgresql("jp_bench_dagster_async"))
    without_synchronous_commit(async_url)
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
    # The ops' PerfDBResource reads PERFDB_URL, `EnvironmentStorage` DAGSTER_PG_URL; the step
    # processes of the multiprocess executor inherit both.
    stack.enter_context(environment(**{PERFDB_URL_ENV: perf_url, DAGSTER_PG_URL_ENV: pooled_url}))
    job_id = prepare(perfdb, args.objects, args.days)

    production = production_job()
    pooled = stack.enter_context(
        dg.DagsterInstance.from_config(str(production_home(scratch / "pooled")))
    )
    stock = stack.enter_context(
        dg.DagsterInstance.from_config(str(stock_postgres_home(scratch / "stock", stock_url)))
    )
    with environment(**{DAGSTER_PG_URL_ENV: async_url}):  # read once, when the storage is built
        unsynced = stack.enter_context(
            dg.DagsterInstance.from_config(str(production_home(scratch / "async")))
        )

    runners: dict[str, Callable[[], tuple[float, int]]] = {
        "a": lambda: run_standalone(perfdb, job_id),
        "b": lambda: run_dagster(perfdb, job_id, pooled, production),
        "b'": lambda: run_dagster(perfdb, job_id, stock, production),
        'b"': lambda: run_dagster(perfdb, job_id, unsynced, production),
    }
    if args.pooled_only:
        del runners["b'"], runners['b"']
    variants = {
        "a": Variant("(a)  JobInstance.run(), standalone"),
        "b": Variant("(b)  Dagster in-process, pooled PostgreSQL storage"),
        "b'": Variant("(b') Dagster in-process, stock dagster-postgres storage"),
        'b"': Variant('(b") as (b), Dagster database synchronous_commit=off'),
        "c": Variant("(c)  Dagster multiprocess executor, pooled storage"),
    }
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
        seconds, events = run_dagster(
            perfdb, job_id, pooled, dg.reconstructable(multiprocess_perfdb_job)
        )
        check_finished(perfdb, job_id, steps)
        variants["c"].seconds.append(seconds)
        variants["c"].events.append(events)

    report_runs(variants, steps)
    if args.profile:
        profile_in_process(perfdb, job_id, pooled, production, variants["a"].median)


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


# Where cProfile's own time goes, by the file (or C function) that spent it.
COMPONENTS = (
    ("psycopg2", "psycopg2: Dagster storage round trips"),
    ("/psycopg/", "psycopg: performance database driver"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/dagster_postgres/", "dagster framework"),
    ("/dagster_shared/", "dagster framework"),
    ("/dagster/", "dagster framework"),
    ("/jobs_pipeline/", "jobs_pipeline"),
    ("/pandas/", "pandas and numpy"),
    ("/numpy/", "pandas and numpy"),
    ("numpy", "pandas and numpy"),
)


def component(filename: str, function: str) -> str:
    where = f"{filename} {function}"
    return next((name for key, name in COMPONENTS if key in where), "Python and other libraries")


def profile_in_process(
    perfdb: PerfDB,
    job_id: int,
    instance: dg.DagsterInstance,
    job: dg.ReconstructableJob,
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
    own: defaultdict[str, float] = defaultdict(float)
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own[component(filename, function)] += row[2]
    total = sum(own.values())
    print(f"\none run under cProfile ({seconds:.2f} s; profiling inflates Python-heavy parts)")
    print(f"  {'own time by component':<44}{'s':>7}{'share':>7}{'ms/step':>9}")
    for name, spent in sorted(own.items(), key=lambda item: -item[1]):
        print(f"  {name:<44}{spent:>7.2f}{spent / total:>7.0%}{1000 * spent / steps:>9.1f}")
    print("  top 15 functions by own time:")
    stats.sort_stats("tottime").print_stats(15)


# --- scale: jobs of 200 to 10,000 steps ---------------------------------------------------------

SCALE_MAX_OBJECTS = 500
PLAN_TARGET_MS = 2.0
RSS_TARGET_MIB = 1024.0
RUN_PAGE_TARGET_SECONDS = 3.0
OVERHEAD_GROWTH_TARGET = 1.3
RUN_PAGE_QUERIES = Path(__file__).resolve().parent / "run_page.graphql"
RUN_PAGE_OPERATIONS = ("RunRootQuery", "RunLogsQuery", "RunStepStatsQuery")
# The UI asks for the first page of a run's events with this limit (LogsProvider.tsx).
RUN_LOGS_PAGE = 1000
DAGSTER_WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
WEBSERVER_TIMEOUT = 180.0


@dataclass
class ScaleRun:
    """One Dagster run of an N-step job, measured in its own run-worker process."""

    steps: int
    pool: bool
    run_id: str = ""
    seconds: float = 0.0
    standalone_seconds: float = 0.0
    plan_seconds: float = 0.0
    summary_seconds: float = 0.0
    rss_start_mib: float = 0.0
    rss_peak_mib: float = 0.0
    events: Counter[str] = field(default_factory=Counter)
    queries: dict[str, list[float]] = field(default_factory=dict)

    @property
    def overhead_ms(self) -> float:
        return 1000 * (self.seconds - self.standalone_seconds) / self.steps

    @property
    def events_per_step(self) -> float:
        return sum(self.events.values()) / self.steps


def scale_shape(steps: int) -> tuple[int, int]:
    """(objects, alarms) with objects x alarms = steps: the fleet's 4 alarms and their variants
    over at most 500 objects (200 = 50 x 4, 2,000 = 500 x 4, 10,000 = 500 x 20)."""
    alarms = 4
    while steps > alarms * SCALE_MAX_OBJECTS or steps % alarms:
        alarms += 4
        if alarms > 400:
            raise SystemExit(f"--steps {steps}: not objects x alarms with objects <= 500")
    return steps // alarms, alarms


def define_alarm_variants(perfdb: PerfDB, fleet: Any, alarms: int) -> list[int]:
    """The fleet's alarms and copies of them under other ids (`1001` -> `11001`, `21001`...):
    as many (object, alarm) steps as a 10,000-step job needs, each as much work as the real."""
    ids = [alarm.alarm_id for alarm in fleet.alarms]
    copy = 1
    while len(ids) < alarms:
        for alarm in fleet.alarms:
            variant = alarm.alarm_id + 10_000 * copy
            perfdb.catalog.define_alarm(
                alarm_id=variant,
                name=f"{alarm.name} ({copy})",
                feature=alarm.feature,
                operator=alarm.operator,
                threshold=alarm.threshold,
                clear_threshold=alarm.clear_threshold,
                min_duration=alarm.min_duration,
            )
            ids.append(variant)
        copy += 1
    return ids[:alarms]


def scale_job(perfdb: PerfDB, fleet: Any, alarm_ids: list[int], steps: int) -> int:
    objects, alarms = scale_shape(steps)
    return create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": fleet.object_names[:objects],
            "alarm_ids": alarm_ids[:alarms],
            "start": fleet.start.isoformat(),
            "end": fleet.end.isoformat(),
        },
        description=f"orchestration benchmark, {steps} steps",
    ).id


def no_pool_home(directory: Path) -> Path:
    """The repository's `dagster.yaml` without the `perfdb` pool's default limit: step ops
    claim no concurrency slot (on a Dagster database where no limit was ever set)."""
    directory.mkdir(parents=True)
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    config["concurrency"].pop("pools", None)
    (directory / "dagster.yaml").write_text(yaml.safe_dump(config))
    return directory


def scale_worker(home: str, job_id: int, profile_path: str) -> None:
    """The run worker of one measured run (`--scale-worker`): `execute_job` in this process,
    as Dagster's run worker does; prints the run id, wall time and peak RSS as JSON."""
    import json

    job = production_job()
    perfdb = PerfDB.connect(os.environ[PERFDB_URL_ENV])
    queued = perfdb.queue.get_job(job_id)
    with dg.DagsterInstance.from_config(home) as instance:
        rss_start = _memory_mib("VmHWM")
        profiler = cProfile.Profile() if profile_path else None
        result, seconds = execute_timed(job, instance, queued, profiler)
        if profiler is not None:
            profiler.dump_stats(profile_path)
    rss_peak = _memory_mib("VmHWM")
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "success": result.success,
                "seconds": seconds,
                "rss_start_mib": rss_start,
                "rss_peak_mib": rss_peak,
            }
        )
    )


def _memory_mib(field_name: str) -> float:
    """A figure of this process from /proc (VmHWM: peak RSS since exec; `ru_maxrss` would
    include the benchmark process that forked this one)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def run_worker(
    home: Path, job_id: int, env: dict[str, str], profile_path: Path | None = None
) -> dict[str, Any]:
    import json

    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--scale-worker",
            str(home),
            str(job_id),
            str(profile_path or ""),
        ],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    outcome: dict[str, Any] = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    if not outcome["success"]:
        raise RuntimeError(f"run {outcome['run_id']} failed")
    return outcome


def run_figures(dagster_url: str, run: ScaleRun) -> None:
    """Events by type and the plan and summary ops' durations, from the run's event log."""
    engine = sa.create_engine(dagster_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = :run "
                    "GROUP BY dagster_event_type"
                ),
                {"run": run.run_id},
            ).all()
            run.events = Counter({str(kind or "(log message)"): count for kind, count in rows})
            spans = connection.execute(
                sa.text(
                    "SELECT step_key, max(timestamp) - min(timestamp) FROM event_logs "
                    "WHERE run_id = :run AND step_key IN (:plan, 'summarise_job') "
                    "AND dagster_event_type IN ('STEP_START', 'STEP_SUCCESS') GROUP BY step_key"
                ),
                {"run": run.run_id, "plan": PLAN_OP_NAME},
            ).all()
    finally:
        engine.dispose()
    durations = {key: span.total_seconds() for key, span in spans}
    run.plan_seconds = durations.get(PLAN_OP_NAME, float("nan"))
    run.summary_seconds = durations.get("summarise_job", float("nan"))


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def webserver(home: Path, env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`dagster-webserver` on the benchmark's instance, in its own session; stopped with SIGTERM
    to its process group, SIGKILL after 30 s."""
    import urllib.request

    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(DAGSTER_WEBSERVER),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(WORKSPACE_FILE),
            ],
            env={**env, "DAGSTER_HOME": str(home)},
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WEBSERVER_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dagster-webserver did not start; see {log_path}") from None
                time.sleep(0.5)
        yield url
    finally:
        stop_process_group(process)


def time_run_page(url: str, run_id: str, repeat: int) -> dict[str, list[float]]:
    """Seconds per answer of each of the run page's queries (`repeat` times each)."""
    import json
    import urllib.request

    document = RUN_PAGE_QUERIES.read_text()
    timings: dict[str, list[float]] = {}
    for operation in RUN_PAGE_OPERATIONS:
        variables: dict[str, Any] = {"runId": run_id}
        if operation == "RunLogsQuery":
            variables.update(cursor=None, limit=RUN_LOGS_PAGE)
        body = json.dumps(
            {"query": document, "operationName": operation, "variables": variables}
        ).encode()
        for _ in range(repeat):
            request = urllib.request.Request(
                f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=600) as response:
                answer = json.loads(response.read())
            timings.setdefault(operation, []).append(time.perf_counter() - started)
            if answer.get("errors"):
                raise RuntimeError(f"{operation}: {answer['errors']}")
    return timings


def bench_scale(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> None:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_scale_perf"))
    pooled_url = stack.enter_context(scratch_postgresql("jp_bench_scale_dagster"))
    unpooled_url = stack.enter_context(scratch_postgresql("jp_bench_scale_nopool"))
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
    largest = max(args.steps)
    objects = max(scale_shape(steps)[0] for steps in args.steps)
    started = time.perf_counter()
    fleet = generate_fleet(objects=objects, days=args.days)
    upgrade_database(perfdb)
    store_fleet(perfdb, fleet)
    alarm_ids = define_alarm_variants(perfdb, fleet, max(scale_shape(s)[1] for s in args.steps))
    with perfdb.engine.connect() as connection:
        # Every run reads warm pages, the first standalone run included.
        connection.exec_driver_sql("SELECT count(*), sum(value) FROM feature_values")
    print(
        f"setup: {objects} objects x {len(alarm_ids)} alarms over {args.days} days in "
        f"{time.perf_counter() - started:.1f} s; largest job {largest} steps"
    )
    homes = {True: production_home(scratch / "scale_pool"), False: no_pool_home(scratch / "scale")}
    urls = {True: pooled_url, False: unpooled_url}
    base_env = {**os.environ, PERFDB_URL_ENV: perf_url}
    runs: list[ScaleRun] = []
    for steps in sorted(args.steps):
        # Standalone first, on a job of its own: it warms the caches for the Dagster runs.
        standalone_job = scale_job(perfdb, fleet, alarm_ids, steps)
        standalone, _ = run_standalone(perfdb, standalone_job)
        check_finished(perfdb, standalone_job, steps)
        job_id = scale_job(perfdb, fleet, alarm_ids, steps)
        for pool in (True, False):
            if not pool and steps > args.no_pool_up_to:
                continue
            perfdb.queue.queue_job(job_id, actor="benchmark")
            outcome = run_worker(homes[pool], job_id, {**base_env, DAGSTER_PG_URL_ENV: urls[pool]})
            check_finished(perfdb, job_id, steps)
            run = ScaleRun(
                steps=steps,
                pool=pool,
                run_id=outcome["run_id"],
                seconds=outcome["seconds"],
                standalone_seconds=standalone,
                rss_start_mib=outcome["rss_start_mib"],
                rss_peak_mib=outcome["rss_peak_mib"],
            )
            run_figures(dagster_postgres_url(urls[pool]), run)
            runs.append(run)
            print(
                f"  {steps} steps, {'pool' if pool else 'no pool'}: {run.seconds:.1f} s "
                f"(standalone {standalone:.1f} s), {run.events_per_step:.2f} events/step",
                flush=True,
            )
        if args.profile:
            # One more run under cProfile, not measured: where the run worker's time goes.
            perfdb.queue.queue_job(job_id, actor="benchmark")
            profile_path = scratch / f"scale_{steps}.prof"
            env = {**base_env, DAGSTER_PG_URL_ENV: pooled_url}
            outcome = run_worker(homes[True], job_id, env, profile_path)
            check_finished(perfdb, job_id, steps)
            print_profile(profile_path, steps, outcome["seconds"])
    if args.webserver:
        env = {**base_env, DAGSTER_PG_URL_ENV: pooled_url}
        with webserver(homes[True], env, scratch / "webserver.log") as url:
            for run in runs:
                if run.pool:
                    run.queries = time_run_page(url, run.run_id, args.query_repeat)
    report_scale(runs)


def print_profile(path: Path, steps: int, seconds: float) -> None:
    stats = pstats.Stats(str(path))
    own: defaultdict[str, float] = defaultdict(float)
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own[component(filename, function)] += row[2]
    total = sum(own.values())
    print(f"    run worker of {steps} steps under cProfile ({seconds:.1f} s, inflated)")
    for name, spent in sorted(own.items(), key=lambda item: -item[1]):
        print(
            f"    {name:<44}{spent:>7.1f} s{spent / total:>6.0%}"
            f"{1000 * spent / steps:>7.2f} ms/step"
        )
    print("    top 20 functions by own time:")
    stats.sort_stats("tottime").print_stats(20)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_scale(runs: list[ScaleRun]) -> None:
    pooled = {run.steps: run for run in runs if run.pool}
    unpooled = {run.steps: run for run in runs if not run.pool}
    smallest = pooled[min(pooled)]
    print()
    print(
        "Jobs of N steps, one run each through Dagster in-process (its own run-worker process, "
        "pooled PostgreSQL storage, step ops in the pool `perfdb`), on a machine shared with "
        "other work: single measurements, not medians; marginal = overhead ms per step added "
        "since the previous N"
    )
    header = (
        f"{'N':>7}{'standalone s':>14}{'Dagster s':>11}{'overhead ms/step':>18}"
        f"{'x smallest':>11}{'marginal':>10}{'plan ms/step':>14}{'summary s':>11}{'RSS MiB':>9}"
        f"{'events/step':>13}{'run page s':>12}"
    )
    print(header)
    print("-" * len(header))
    previous: ScaleRun | None = None
    for steps, run in sorted(pooled.items()):
        page = _page_seconds(run)
        # The overhead of each step more than the previous N: per-run costs cancel out.
        marginal = (
            ""
            if previous is None
            else f"{1000 * (_overhead(run) - _overhead(previous)) / (steps - previous.steps):.1f}"
        )
        previous = run
        print(
            f"{steps:>7}{run.standalone_seconds:>14.1f}{run.seconds:>11.1f}{run.overhead_ms:>18.1f}"
            f"{run.overhead_ms / smallest.overhead_ms:>10.2f}x{marginal:>10}"
            f"{1000 * run.plan_seconds / steps:>14.2f}{run.summary_seconds:>11.2f}"
            f"{run.rss_peak_mib:>9.0f}{run.events_per_step:>13.2f}"
            f"{'' if page is None else f'{page:.2f}':>12}"
        )
    print()
    print("targets (each N)")
    for steps, run in sorted(pooled.items()):
        growth = run.overhead_ms / smallest.overhead_ms
        checks = [
            (
                f"overhead/step within {OVERHEAD_GROWTH_TARGET}x of {smallest.steps} steps",
                f"{growth:.2f}x",
                growth <= OVERHEAD_GROWTH_TARGET,
            ),
            (
                f"plan op < {PLAN_TARGET_MS:.0f} ms/step",
                f"{1000 * run.plan_seconds / steps:.2f} ms",
                1000 * run.plan_seconds / steps < PLAN_TARGET_MS,
            ),
            (
                f"run-worker peak RSS < {RSS_TARGET_MIB:.0f} MiB",
                f"{run.rss_peak_mib:.0f} MiB (at start {run.rss_start_mib:.0f})",
                run.rss_peak_mib < RSS_TARGET_MIB,
            ),
        ]
        page = _page_seconds(run)
        if page is not None:
            checks.append(
                (
                    f"run page queries < {RUN_PAGE_TARGET_SECONDS:.0f} s (sum of medians)",
                    f"{page:.2f} s",
                    page < RUN_PAGE_TARGET_SECONDS,
                )
            )
        for label, value, ok in checks:
            print(f"  N={steps:<6} {label:<50}{value:>26}  {_verdict(ok)}")
    if any(run.queries for run in pooled.values()):
        print()
        print("run page queries, seconds per answer (median of the repeats; first answer)")
        for steps, run in sorted(pooled.items()):
            parts = [
                f"{name} {statistics.median(times):.2f} ({times[0]:.2f})"
                for name, times in run.queries.items()
            ]
            print(f"  N={steps:<6} " + ", ".join(parts))
    print()
    print("events per step by type (pooled runs)")
    kinds = sorted({kind for run in pooled.values() for kind in run.events})
    for steps, run in sorted(pooled.items()):
        shown = ", ".join(
            f"{kind} {run.events[kind] / steps:.2f}" for kind in kinds if run.events[kind]
        )
        print(f"  N={steps:<6} {shown}")
    if unpooled:
        print()
        print("the concurrency pool's cost: the same job without a pool limit (no slot claims)")
        for steps, run in sorted(unpooled.items()):
            with_pool = pooled[steps]
            print(
                f"  N={steps:<6} with pool {with_pool.overhead_ms:.1f} ms/step, without "
                f"{run.overhead_ms:.1f} ms/step: the pool costs "
                f"{with_pool.overhead_ms - run.overhead_ms:.1f} ms/step "
                f"({with_pool.events_per_step:.2f} vs {run.events_per_step:.2f} events/step)"
            )


def _overhead(run: ScaleRun) -> float:
    return run.seconds - run.standalone_seconds


def _page_seconds(run: ScaleRun) -> float | None:
    if not run.queries:
        return None
    return sum(statistics.median(times) for times in run.queries.values())


# --- latency through the daemon ----------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    created: float  # queued -> the sensor's run exists
    claimed: float  # queued -> job started (the run's plan op claimed it)
    run_started: float  # queued -> the run's RUN_START event
    finished: float  # queued -> job Finished


@contextmanager
def daemon_process(
    workspace: Path, env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(DAGSTER_DAEMON), "run", "-w", str(workspace)],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        # The daemon, its code server and any run worker share the process group.
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group a `start_new_session` child leads; SIGKILL after 30 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until(condition: Callable[[], Any], what: str, process: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + DAEMON_TIMEOUT
    while True:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_through_daemon(
    perfdb: PerfDB,
    job_id: int,
    instance: dg.DagsterInstance,
    process: subprocess.Popen[bytes],
    rng: random.Random,
) -> Latency:
    # Queue at a random moment of the sensor's 5 s cycle, as a user would.
    time.sleep(rng.uniform(0, 5))
    queued = perfdb.queue.queue_job(job_id, actor="benchmark")
    queued_at = queued.last_state_change

    def ended() -> Any:
        job = perfdb.queue.get_job(job_id)
        return job if job.queue_count == queued.queue_count and job.finished else None

    job = wait_until(ended, f"job {job_id} to end", process)
    if job.state != JobState.FINISHED:
        raise RuntimeError(f"job {job_id} ended {job.state.label}: {job.comment}")
    record = wait_until(
        lambda: _finished_record(instance, job.run_id), f"run {job.run_id} to end", process
    )
    return Latency(
        created=_since(queued_at, record.create_timestamp.timestamp()),
        claimed=_since(queued_at, job.started.timestamp()),
        run_started=_since(queued_at, record.start_time),
        finished=_since(queued_at, job.finished.timestamp()),
    )


def _finished_record(instance: dg.DagsterInstance, run_id: str) -> Any:
    record = instance.get_run_record_by_id(run_id)
    return record if record is not None and record.dagster_run.is_finished else None


def _since(queued_at: datetime, timestamp: float) -> float:
    return timestamp - queued_at.timestamp()


def daemon_setup(
    home: Path, dagster_url: str, perf_url: str, stack: ExitStack
) -> tuple[dict[str, str], dg.DagsterInstance]:
    """The environment of a daemon on these databases, and an instance on the same for this
    process (closed with `stack`)."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        DAGSTER_PG_URL_ENV: dagster_url,
        PERFDB_URL_ENV: perf_url,
    }
    with environment(**{DAGSTER_PG_URL_ENV: dagster_url}):
        instance = stack.enter_context(dg.DagsterInstance.from_config(str(home)))
    return env, instance


def bench_daemon(workspace: Path, scratch: Path, stack: ExitStack) -> None:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_daemon_perf"))
    dagster_url = stack.enter_context(scratch_postgresql("jp_bench_daemon_dagster"))
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
    fleet = generate_fleet(objects=1, days=7)
    upgrade_database(perfdb)
    store_fleet(perfdb, fleet)
    job_id = create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": fleet.object_names,
            "alarm_ids": [fleet.alarms[0].alarm_id],
            "start": fleet.start.isoformat(),
            "end": fleet.end.isoformat(),
        },
        description="orchestration benchmark, one step",
    ).id
    home = production_home(scratch / "daemon_home")
    env, instance = daemon_setup(home, dagster_url, perf_url, stack)
    log_path = scratch / "daemon.log"
    process = stack.enter_context(daemon_process(workspace, env, log_path))
    rng = random.Random(0)
    started = time.perf_counter()
    # The first run is not timed: it waits for the daemon and its code server to start.
    perfdb.queue.queue_job(job_id, actor="benchmark")
    wait_until(
        lambda: perfdb.queue.get_job(job_id).state == JobState.FINISHED,
        "the first run through the daemon",
        process,
    )
    print(
        f"\ndaemon up and first one-step job Finished after {time.perf_counter() - started:.1f} s"
    )
    samples = [
        run_through_daemon(perfdb, job_id, instance, process, rng) for _ in range(DAEMON_SAMPLES)
    ]
    report_latency(samples, queue_sensor_period(log_path))


QUEUE_SENSOR_TICK = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000"
    r".*Checking for new runs for sensor: perfdb_queue_sensor"
)


def queue_sensor_period(log_path: Path) -> float | None:
    """The median time between two evaluations of the queue sensor, from the daemon's log."""
    ticks = [
        datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
        for match in QUEUE_SENSOR_TICK.finditer(log_path.read_text(errors="replace"))
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    return statistics.median(gaps) if gaps else None


def report_latency(samples: list[Latency], sensor_period: float | None) -> None:
    rows = [
        ("queued -> run created by the sensor", [s.created for s in samples]),
        ("queued -> RUN_START", [s.run_started for s in samples]),
        ("queued -> job started (run claimed it)", [s.claimed for s in samples]),
        ("queued -> job Finished", [s.finished for s in samples]),
    ]
    period = "?" if sensor_period is None else f"{sensor_period:.0f} s"
    print(
        f"one-step job through dagster-daemon, {len(samples)} requeues (seconds); the queue "
        f"sensor was evaluated every {period} (median, from the daemon's log)"
    )
    header = f"{'interval':<42}{'median':>8}{'min':>8}{'max':>8}   samples"
    print(header)
    print("-" * (len(header) + 30))
    for label, values in rows:
        print(
            f"{label:<42}{statistics.median(values):>8.2f}{min(values):>8.2f}{max(values):>8.2f}"
            f"   {' '.join(f'{value:.2f}' for value in values)}"
        )
    claimed = statistics.median(sample.claimed for sample in samples)
    verdict = "met" if claimed <= LAUNCH_TARGET_SECONDS else "MISSED"
    print(
        f"queued -> run started (job claimed): median {claimed:.2f} s "
        f"(target <= {LAUNCH_TARGET_SECONDS:.0f} s: {verdict})"
    )


def main() -> None:
    if sys.argv[1:2] == ["--scale-worker"]:
        home, job_id, profile_path = sys.argv[2:5]
        scale_worker(home, int(job_id), profile_path)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument(
        "--days", type=int, default=None, help="period of the job (default 30; 3 with --steps)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        nargs="+",
        help="instead of the 200-step comparison: one run each of jobs of these sizes "
        "(e.g. 200 2000 10000), with plan time, overhead, RSS, events and run page timings",
    )
    parser.add_argument(
        "--no-pool-up-to",
        type=int,
        default=2000,
        help="with --steps: also run jobs up to this size without the pool limit (default 2000)",
    )
    parser.add_argument("--no-webserver", dest="webserver", action="store_false")
    parser.add_argument("--query-repeat", type=int, default=3, help="answers timed per query")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of (a) and (b)s")
    parser.add_argument(
        "--pooled-only", action="store_true", help="only (a) and (b) (and (c)): the headline ratio"
    )
    parser.add_argument("--no-multiprocess", dest="multiprocess", action="store_false")
    parser.add_argument("--no-daemon", dest="daemon", action="store_false")
    parser.add_argument("--profile", action="store_true", help="cProfile one run of (b)")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=WORKSPACE_FILE,
        help="workspace file of the daemon (default: the repository's)",
    )
    args = parser.parse_args()
    if args.days is None:
        args.days = 3 if args.steps else 30

    with tempfile.TemporaryDirectory(prefix="jp_bench_orchestration_") as directory:
        scratch = Path(directory)
        if args.steps:
            with ExitStack() as stack:
                bench_scale(args, scratch, stack)
            return
        with ExitStack() as stack:
            bench_runs(args, scratch, stack)
        if args.daemon:
            with ExitStack() as stack:
                bench_daemon(args.workspace, scratch, stack)


if __name__ == "__main__":
    main()
