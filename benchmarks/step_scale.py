"""Jobs of 200 to 10,000 steps through Dagster (`orchestration.py --steps N ...`): one run of each
in a run-worker process of its own, its overhead against standalone, plan and summary time, peak
RSS, events, and the run page's answer times, against their targets.

Run as a script, this module is that run worker: `step_scale.py HOME JOB_ID [PROFILE_PATH]`.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from run_page import page_seconds, time_run_page
from scratch import scratch_postgresql
from timed_runs import (
    check_finished,
    create_alarm_job,
    execute_timed,
    own_time_by_component,
    production_job,
    run_standalone,
)

from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import SyntheticFleet, generate_fleet
from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.orchestration.instance_storage import dagster_postgres_url
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.settings import PERFDB_URL
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    PRODUCTION_WORKSPACE,
    REPO_ROOT,
    dagster_environment,
    make_dagster_home,
    running_webserver,
)

SCALE_MAX_OBJECTS = 500
PLAN_TARGET_MS = 2.0
RSS_TARGET_MIB = 1024.0
RUN_PAGE_TARGET_SECONDS = 3.0
OVERHEAD_GROWTH_TARGET = 1.3


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


def define_alarm_variants(perfdb: PerfDB, fleet: SyntheticFleet, alarms: int) -> list[int]:
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


def scale_job(perfdb: PerfDB, fleet: SyntheticFleet, alarm_ids: list[int], steps: int) -> int:
    objects, alarms = scale_shape(steps)
    return create_alarm_job(
        perfdb,
        fleet,
        f"orchestration benchmark, {steps} steps",
        object_names=fleet.object_names[:objects],
        alarm_ids=alarm_ids[:alarms],
    )


def without_pool_limit(config: dict[str, Any]) -> None:
    """`dagster.yaml` without the `perfdb` pool's default limit: step ops claim no concurrency
    slot (on a Dagster database where no limit was ever set)."""
    config["concurrency"].pop("pools", None)


# --- the run worker, a process of its own -------------------------------------------------------


def scale_worker(home: str, job_id: int, profile_path: str) -> None:
    """The run worker of one measured run: `execute_job` in this process, as Dagster's run
    worker does; prints the run id, wall time and peak RSS as JSON."""
    job = production_job()
    perfdb = PerfDB.connect(os.environ[PERFDB_URL.name])
    queued = perfdb.queue.get_job(job_id)
    with dg.DagsterInstance.from_config(home) as instance:
        rss_start = _memory_mib("VmHWM")
        profiler = cProfile.Profile() if profile_path else None
        result, seconds = execute_timed(job, instance, queued, profiler)
        if profiler is not None:
            profiler.dump_stats(profile_path)
    rss_peak = _memory_mib("VmHWM")
    outcome = {
        "run_id": result.run_id,
        "success": result.success,
        "seconds": seconds,
        "rss_start_mib": rss_start,
        "rss_peak_mib": rss_peak,
    }
    print(json.dumps(outcome))


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
    completed = subprocess.run(
        [sys.executable, __file__, str(home), str(job_id), str(profile_path or "")],
        env=env,
        cwd=REPO_ROOT,
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


# --- the benchmark ------------------------------------------------------------------------------


@dataclass
class ScaleSetup:
    """The scale benchmark's databases, fleet and Dagster homes (with and without the pool)."""

    perfdb: PerfDB
    perf_url: str
    fleet: SyntheticFleet
    alarm_ids: list[int]
    homes: dict[bool, Path]
    urls: dict[bool, str]

    def env(self, pool: bool) -> dict[str, str]:
        return dagster_environment(self.homes[pool], self.perf_url, self.urls[pool])


def set_up_scale(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> ScaleSetup:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_scale_perf"))
    pooled_url = stack.enter_context(scratch_postgresql("jp_bench_scale_dagster"))
    unpooled_url = stack.enter_context(scratch_postgresql("jp_bench_scale_nopool"))
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
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
        f"{time.perf_counter() - started:.1f} s; largest job {max(args.steps)} steps"
    )
    homes = {
        True: make_dagster_home(scratch / "scale_pool"),
        False: make_dagster_home(scratch / "scale", edit=without_pool_limit),
    }
    urls = {True: pooled_url, False: unpooled_url}
    return ScaleSetup(perfdb, perf_url, fleet, alarm_ids, homes, urls)


def measure_size(setup: ScaleSetup, steps: int, args: argparse.Namespace) -> list[ScaleRun]:
    """Standalone, then through Dagster with the pool (and without, up to `--no-pool-up-to`)."""
    perfdb = setup.perfdb
    # Standalone first, on a job of its own: it warms the caches for the Dagster runs.
    standalone_job = scale_job(perfdb, setup.fleet, setup.alarm_ids, steps)
    standalone, _ = run_standalone(perfdb, standalone_job)
    check_finished(perfdb, standalone_job, steps)
    job_id = scale_job(perfdb, setup.fleet, setup.alarm_ids, steps)
    runs = []
    for pool in (True, False):
        if not pool and steps > args.no_pool_up_to:
            continue
        perfdb.queue.queue_job(job_id, actor="benchmark")
        outcome = run_worker(setup.homes[pool], job_id, setup.env(pool))
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
        run_figures(dagster_postgres_url(setup.urls[pool]), run)
        runs.append(run)
        print(
            f"  {steps} steps, {'pool' if pool else 'no pool'}: {run.seconds:.1f} s "
            f"(standalone {standalone:.1f} s), {run.events_per_step:.2f} events/step",
            flush=True,
        )
    if args.profile:
        # One more run under cProfile, not measured: where the run worker's time goes.
        perfdb.queue.queue_job(job_id, actor="benchmark")
        profile_path = setup.homes[True].parent / f"scale_{steps}.prof"
        outcome = run_worker(setup.homes[True], job_id, setup.env(True), profile_path)
        check_finished(perfdb, job_id, steps)
        print_profile(profile_path, steps, outcome["seconds"])
    return runs


def bench_scale(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> None:
    setup = set_up_scale(args, scratch, stack)
    runs = [run for steps in sorted(args.steps) for run in measure_size(setup, steps, args)]
    if args.webserver:
        webserver = running_webserver(
            PRODUCTION_WORKSPACE, setup.env(True), scratch / "webserver.log"
        )
        with webserver as url:
            for run in runs:
                if run.pool:
                    run.queries = time_run_page(url, run.run_id, args.query_repeat)
    report_scale(runs)


def print_profile(path: Path, steps: int, seconds: float) -> None:
    stats = pstats.Stats(str(path))
    own = own_time_by_component(stats)
    total = sum(own.values())
    print(f"    run worker of {steps} steps under cProfile ({seconds:.1f} s, inflated)")
    for name, spent in own.items():
        print(
            f"    {name:<44}{spent:>7.1f} s{spent / total:>6.0%}"
            f"{1000 * spent / steps:>7.2f} ms/step"
        )
    print("    top 20 functions by own time:")
    stats.sort_stats("tottime").print_stats(20)


# --- the report ---------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_scale(runs: list[ScaleRun]) -> None:
    pooled = {run.steps: run for run in runs if run.pool}
    unpooled = {run.steps: run for run in runs if not run.pool}
    report_table(pooled)
    report_targets(pooled)
    report_details(pooled, unpooled)


def report_table(pooled: dict[int, ScaleRun]) -> None:
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
        page = page_seconds(run.queries)
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


def report_targets(pooled: dict[int, ScaleRun]) -> None:
    smallest = pooled[min(pooled)]
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
        page = page_seconds(run.queries)
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


def report_details(pooled: dict[int, ScaleRun], unpooled: dict[int, ScaleRun]) -> None:
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


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or not sys.argv[2].isdigit():
        raise SystemExit(
            "usage: step_scale.py HOME JOB_ID [PROFILE_PATH] (the run worker that "
            "`orchestration.py --steps N` starts; run that script for the benchmark)"
        )
    scale_worker(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "")
