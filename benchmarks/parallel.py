"""Heavy steps in parallel: one 40-step job under each execution profile, in one run.

Each step is an alarm calculation over a year of 1-minute values (525,600 samples) of one
object: 4 objects x 10 alarms, in a scratch PostgreSQL performance database, with the Dagster
instance on a scratch PostgreSQL database too (the repository's `dagster.yaml`, pooled storage,
the `perfdb` pool's default limit). The job is requeued between runs and every run must leave it
Finished with the same occurrences. Variants:

  in_process        every step in the run worker, one after another (the baseline)
  multiprocess x1   Dagster's multiprocess executor (forkserver), one step at a time
  multiprocess x2   the same, two steps at a time
  celery x1         one Celery worker (`scripts/celery-worker NAME --concurrency=1`), RabbitMQ
  celery x2         two such workers

Every run is orchestrated by a fresh child process (`execute_job`), so that each profile's
settings are read as a deployment reads them; its wall time is from the start of the run to its
end. The speed-up is against `in_process`; on a 2-core machine the two-worker profiles share the
cores with PostgreSQL, the orchestrator and each other.

    .venv/bin/python benchmarks/parallel.py [--objects 4] [--alarms 10] [--days 365]
        [--no-celery]

`JOBS_PIPELINE_CELERY_BROKER` names the broker (default: RabbitMQ on this machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scratch import scratch_postgresql
from timed_runs import check_finished

from jobs_pipeline.jobs import create_job, upgrade_database
from jobs_pipeline.orchestration.execution import Profile
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.settings import (
    CELERY_QUEUE,
    EXECUTION,
    MAX_CONCURRENT_STEPS,
    PERFDB_URL,
    PROJECT_ROOT,
)
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    celery_worker_ready,
    dagster_environment,
    make_dagster_home,
    start_celery_worker,
    stop_process_group,
    wait_for,
)

ALARM_CALC = "Alarm Calculation"
FEATURE = "active_power_1min"
MINUTE = timedelta(minutes=1)
START = datetime(2025, 1, 1, tzinfo=UTC)
SPEED_UP_TARGET = 1.8  # "approach 2x" with two workers on two cores


@dataclass(frozen=True)
class Variant:
    label: str
    profile: Profile
    workers: int


VARIANTS = [
    Variant("in_process", Profile.IN_PROCESS, 1),
    Variant("multiprocess x1", Profile.MULTIPROCESS, 1),
    Variant("multiprocess x2", Profile.MULTIPROCESS, 2),
    Variant("celery x1", Profile.CELERY, 1),
    Variant("celery x2", Profile.CELERY, 2),
]


# --- the data and the job ----------------------------------------------------------------------


def prepare(perfdb: PerfDB, objects: int, alarms: int, days: int) -> tuple[int, int]:
    started = time.perf_counter()
    upgrade_database(perfdb)
    samples = days * 24 * 60
    rng = np.random.default_rng(7)
    timestamps = pd.date_range(START, periods=samples, freq="1min")
    names = [f"WTG-{n + 1:03d}" for n in range(objects)]
    for name in names:
        # A daily cycle with noise and a few hours-long excursions: every alarm finds some.
        hours = np.arange(samples) / 60.0
        values = 1000 + 800 * np.sin(hours / 24 * 2 * np.pi) + rng.normal(0, 120, samples)
        for centre in rng.integers(0, samples, size=days // 7 + 1):
            values[centre : centre + int(rng.integers(30, 300))] += 900
        frame = pd.DataFrame(
            {"object": name, "feature": FEATURE, "timestamp": timestamps, "value": values}
        )
        perfdb.values.import_frame(frame, sampling_period=MINUTE)
    for n in range(alarms):
        perfdb.catalog.define_alarm(
            alarm_id=5000 + n,
            name=f"power above {1600 + 50 * n}",
            feature=FEATURE,
            operator=">",
            threshold=1600 + 50 * n,
            min_duration=timedelta(minutes=5 * (n % 3)),
        )
    job = create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": names,
            "alarm_ids": [5000 + n for n in range(alarms)],
            "start": START.isoformat(),
            "end": (START + timedelta(days=days)).isoformat(),
        },
        description="parallel benchmark",
    )
    print(
        f"setup: {objects} objects x {alarms} alarms, {objects * samples:,} values "
        f"(1-minute, {days} days) in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return job.id, objects * alarms


def outcome(perfdb: PerfDB, job_id: int, steps: int) -> int:
    """The number of occurrences, once checked that the job's `steps` steps are Finished."""
    check_finished(perfdb, job_id, steps)
    return len(perfdb.occurrences.list())


# --- one run, in a child process ----------------------------------------------------------------


def run_child(profile_name: str, job_id: int) -> None:
    """Runs the job once under `profile_name` and prints {"seconds": ..., "run_id": ...}."""
    import dagster as dg
    from dagster._core.definitions.reconstruct import ReconstructableRepository

    from jobs_pipeline.orchestration.sensors import run_request

    profile = Profile(profile_name)
    perfdb = PerfDB.connect(os.environ[PERFDB_URL.name])
    job = perfdb.queue.queue_job(job_id, actor="benchmark")
    request = run_request(job)
    assert request.job_name == profile.job_name, request.job_name
    recon_job = ReconstructableRepository.for_module(
        "jobs_pipeline.definitions", "defs", str(PROJECT_ROOT)
    ).get_reconstructable_job(profile.job_name)
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = dg.execute_job(
            recon_job, instance, run_config=request.run_config, tags=request.tags
        )
        seconds = time.perf_counter() - started
        steps = step_spans(instance, result.run_id)
    perfdb.dispose()
    # How long a step op took where it ran, and how many ran at once on average between the
    # first step's start and the last one's end.
    busy = sum(end - start for start, end in steps.values())
    window = max(end for _, end in steps.values()) - min(start for start, _ in steps.values())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "run_id": result.run_id,
                "success": result.success,
                "step_seconds": busy / len(steps),
                "steps_at_once": busy / window,
            }
        )
    )


def step_spans(instance: Any, run_id: str) -> dict[str, tuple[float, float]]:
    """STEP_START and STEP_SUCCESS times of each step op of the run."""
    import dagster as dg

    starts: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    for record in instance.get_records_for_run(run_id, of_type=kinds, limit=100_000).records:
        entry = record.event_log_entry
        key = entry.step_key or ""
        if not key.startswith("run_step["):
            continue
        if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
            starts[key] = entry.timestamp
        elif key in starts:
            spans[key] = (starts[key], entry.timestamp)
    return spans


def cpu_seconds() -> tuple[float, float]:
    """CPU time the whole machine has spent busy, and idle waiting for the disk, since boot
    (all cores), from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle - iowait) / tick, iowait / tick


def run_variant(variant: Variant, job_id: int, env: dict[str, str], log: Path) -> dict[str, Any]:
    child_env = {
        **env,
        EXECUTION.name: variant.profile.value,
        MAX_CONCURRENT_STEPS.name: str(variant.workers),
    }
    with log.open("ab") as stderr:
        completed = subprocess.run(
            [sys.executable, __file__, "_run", variant.profile.value, str(job_id)],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            check=False,
        )
    lines = completed.stdout.decode().strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{variant.label}: the run's process failed; see {log}")
    result = json.loads(lines[-1])
    if not result["success"]:
        raise RuntimeError(f"{variant.label}: run {result['run_id']} failed; see {log}")
    return result


@contextmanager
def celery_workers(count: int, env: dict[str, str], directory: Path) -> Iterator[None]:
    """`count` workers of one task at a time each, ready before the run starts."""
    processes = []
    logs = []
    try:
        for n in range(count):
            log_path = directory / f"worker-{uuid.uuid4().hex[:6]}.log"
            logs.append(log_path)
            processes.append(start_celery_worker(f"bench{n}", env, log_path))
        wait_for(
            lambda: all(celery_worker_ready(path) for path in logs),
            timeout=120,
            what=f"celery workers to be ready; see {directory}",
            interval=0.5,
        )
        yield
    finally:
        for process in processes:
            stop_process_group(process)


# --- the benchmark -----------------------------------------------------------------------------


@dataclass
class Measures:
    """What each variant's run took: wall seconds, the run's own figures, the machine's CPU."""

    seconds: dict[str, float] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    disk_wait: dict[str, float] = field(default_factory=dict)
    occurrences: set[int] = field(default_factory=set)


def measure(
    variants: list[Variant],
    perfdb: PerfDB,
    job_id: int,
    steps: int,
    env: dict[str, str],
    scratch: Path,
) -> Measures:
    measures = Measures()
    log = scratch / "runs.log"
    for variant in variants:
        with ExitStack() as workers:
            if variant.profile is Profile.CELERY:
                workers.enter_context(celery_workers(variant.workers, env, scratch))
            busy_before, wait_before = cpu_seconds()
            measures.runs[variant.label] = run_variant(variant, job_id, env, log)
            measures.seconds[variant.label] = float(measures.runs[variant.label]["seconds"])
            # The child's start and the run's setup are in here too, a second or so.
            busy_after, wait_after = cpu_seconds()
            measures.cpu[variant.label] = busy_after - busy_before
            measures.disk_wait[variant.label] = wait_after - wait_before
        measures.occurrences.add(outcome(perfdb, job_id, steps))
        print(f"  {variant.label}: {measures.seconds[variant.label]:.1f} s", flush=True)
    if len(measures.occurrences) != 1:
        raise RuntimeError(f"the profiles disagree on the occurrences: {measures.occurrences}")
    return measures


def report(variants: list[Variant], measures: Measures, steps: int, days: int) -> None:
    seconds, runs, cpu = measures.seconds, measures.runs, measures.cpu
    base = seconds["in_process"]
    print()
    print(
        f"{steps} steps, each {days} days of 1-minute values; {os.cpu_count()} cores; "
        f"{next(iter(measures.occurrences))} occurrences every run"
    )
    cores = os.cpu_count() or 1
    header = (
        f"{'profile':<18}{'wall s':>8}{'s/step':>8}{'speed-up':>10}{'CPU s/step':>12}"
        f"{'cores busy':>12}{'disk wait':>11}{'ceiling':>9}{'step op s':>11}{'at once':>9}"
        "  target"
    )
    print(header)
    print("-" * len(header))
    for variant in variants:
        wall = seconds[variant.label]
        speed_up = base / wall
        cpu_per_step = cpu[variant.label] / steps
        # The best this profile could do with every core busy on its CPU work per step.
        ceiling = base / steps / (cpu_per_step / min(cores, variant.workers))
        target = ""
        if variant.workers == 2:
            verdict = "met" if speed_up >= SPEED_UP_TARGET else "MISSED"
            target = f">= {SPEED_UP_TARGET}x: {verdict}"
        print(
            f"{variant.label:<18}{wall:>8.1f}{wall / steps:>8.2f}{speed_up:>9.2f}x"
            f"{cpu_per_step:>12.2f}{cpu[variant.label] / wall:>12.2f}"
            f"{measures.disk_wait[variant.label] / wall:>11.2f}{ceiling:>8.2f}x"
            f"{runs[variant.label]['step_seconds']:>11.2f}{runs[variant.label]['steps_at_once']:>9.2f}"
            f"  {target}"
        )
    print(
        "CPU s/step: the whole machine's busy CPU time (run worker, step processes or Celery "
        "workers, PostgreSQL, RabbitMQ) per step; cores busy and disk wait: averages over the "
        "run (disk wait: cores idle while I/O is pending); ceiling: the speed-up this CPU work "
        f"would allow with min(workers, {cores} cores) busy all the time; step op s: a step op's "
        "time from its start to its success where it ran; at once: step ops running at once on "
        "average, from the first one's start to the last one's end."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=4)
    parser.add_argument("--alarms", type=int, default=10)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()

    variants = [v for v in VARIANTS if not (args.no_celery and v.profile is Profile.CELERY)]
    with ExitStack() as stack:
        perf_url = stack.enter_context(scratch_postgresql("jp_bench_parallel"))
        dagster_url = stack.enter_context(scratch_postgresql("jp_bench_parallel_dagster"))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jp_parallel_")))
        env = dagster_environment(
            make_dagster_home(scratch / "dagster_home"), perf_url, dagster_url
        )
        env[CELERY_QUEUE.name] = f"jobs_pipeline_bench_{uuid.uuid4().hex[:8]}"
        perfdb = PerfDB.connect(perf_url)
        stack.callback(perfdb.dispose)
        job_id, steps = prepare(perfdb, args.objects, args.alarms, args.days)
        measures = measure(variants, perfdb, job_id, steps, env, scratch)
    report(variants, measures, steps, args.days)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_run":
        run_child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
