"""From queued to Finished through a real `dagster-daemon run` (`orchestration.py` after its
runs): a one-step job requeued a few times at random moments of the queue sensor's cycle, and
the median time to each stage of its run."""

from __future__ import annotations

import itertools
import random
import re
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
from scratch import scratch_postgresql
from timed_runs import create_alarm_job

from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import generate_fleet
from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    Daemon,
    dagster_environment,
    finished_run_record,
    instance_for_environment,
    make_dagster_home,
    running_daemon,
    wait_for,
)

LAUNCH_TARGET_SECONDS = 4.0
DAEMON_SAMPLES = 5
DAEMON_TIMEOUT = 120.0
QUEUE_SENSOR_TICK = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000"
    r".*Checking for new runs for sensor: perfdb_queue_sensor"
)


@dataclass(frozen=True)
class Latency:
    created: float  # queued -> the sensor's run exists
    claimed: float  # queued -> job started (the run's plan op claimed it)
    run_started: float  # queued -> the run's RUN_START event
    finished: float  # queued -> job Finished


def wait_on_daemon(condition: Any, what: str, daemon: Daemon) -> Any:
    """Polls `condition` often (the figures are seconds), failing if the daemon exits."""
    return wait_for(condition, timeout=DAEMON_TIMEOUT, what=what, interval=0.05, daemon=daemon)


def run_through_daemon(
    perfdb: PerfDB,
    job_id: int,
    instance: dg.DagsterInstance,
    daemon: Daemon,
    rng: random.Random,
) -> Latency:
    # Queue at a random moment of the sensor's 5 s cycle, as a user would.
    time.sleep(rng.uniform(0, 5))
    queued = perfdb.queue.queue_job(job_id, actor="benchmark")
    queued_at = queued.last_state_change

    def ended() -> Any:
        job = perfdb.queue.get_job(job_id)
        return job if job.queue_count == queued.queue_count and job.finished else None

    job = wait_on_daemon(ended, f"job {job_id} to end", daemon)
    if job.state != JobState.FINISHED:
        raise RuntimeError(f"job {job_id} ended {job.state.label}: {job.comment}")
    record = wait_on_daemon(
        finished_run_record(instance, job.run_id), f"run {job.run_id} to end", daemon
    )
    return Latency(
        created=_since(queued_at, record.create_timestamp.timestamp()),
        claimed=_since(queued_at, job.started.timestamp()),
        run_started=_since(queued_at, record.start_time),
        finished=_since(queued_at, job.finished.timestamp()),
    )


def _since(queued_at: datetime, timestamp: float) -> float:
    return timestamp - queued_at.timestamp()


def bench_daemon(workspace: Path, scratch: Path, stack: ExitStack) -> None:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_daemon_perf"))
    dagster_url = stack.enter_context(scratch_postgresql("jp_bench_daemon_dagster"))
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
    fleet = generate_fleet(objects=1, days=7)
    upgrade_database(perfdb)
    store_fleet(perfdb, fleet)
    job_id = create_alarm_job(
        perfdb,
        fleet,
        "orchestration benchmark, one step",
        alarm_ids=[fleet.alarms[0].alarm_id],
    )
    env = dagster_environment(make_dagster_home(scratch / "daemon_home"), perf_url, dagster_url)
    instance = stack.enter_context(instance_for_environment(env))
    log_path = scratch / "daemon.log"
    daemon = stack.enter_context(running_daemon(workspace, env, log_path))
    rng = random.Random(0)
    started = time.perf_counter()
    # The first run is not timed: it waits for the daemon and its code server to start.
    perfdb.queue.queue_job(job_id, actor="benchmark")
    wait_on_daemon(
        lambda: perfdb.queue.get_job(job_id).state == JobState.FINISHED,
        "the first run through the daemon",
        daemon,
    )
    print(
        f"\ndaemon up and first one-step job Finished after {time.perf_counter() - started:.1f} s"
    )
    samples = [
        run_through_daemon(perfdb, job_id, instance, daemon, rng) for _ in range(DAEMON_SAMPLES)
    ]
    report_latency(samples, queue_sensor_period(log_path))


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
