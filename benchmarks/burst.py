"""Many small jobs: a burst of one-step jobs through a real `dagster-daemon run`.

The performance database and the Dagster instance are scratch PostgreSQL databases, the instance
is configured by the repository's `dagster.yaml` (or `--dagster-yaml FILE`), and the daemon
loads the repository's `workspace.yaml`, as in production. The jobs are `JobAlarmCalc` jobs of one
step each (one object and one alarm over one day, each job its own pair), created as rows and then
queued in one go, the frontend's way. The first job runs alone (the daemon and its code server
starting up); the clock starts when the burst is queued and stops when its last job has ended.

    .venv/bin/python benchmarks/burst.py [--jobs N] [--dagster-yaml FILE] [--job-type-limit N]

It prints jobs per minute, queued -> claimed (p50/p95), the largest number of runs in flight and
where a run's time goes, stage by stage, from Dagster's run events:

    queued (job row)  -> run created (the queue sensor)  -> dequeued (STARTING, the run queue)
    -> worker up (the run worker's first engine event)  -> RUN_START  -> claimed (the plan op
    took the job)  -> job ended  -> run ended

All jobs are of one type, and `dagster.yaml` lets at most 3 runs of one job type run at once
(`tag_concurrency_limits`), below `max_concurrent_runs` (4): the runs in flight can reach 3.
`--job-type-limit 4` raises the per-type limit in the benchmark's copy of `dagster.yaml`, to see
the instance-wide limit reached. `JOBS_PIPELINE_BENCH_PG_URL` is an admin URL of a PostgreSQL
server where the benchmark creates and drops its databases (default: the local server as root).
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from daemon_latency import wait_on_daemon
from scratch import scratch_postgresql
from timed_runs import create_alarm_job

from jobs_pipeline.demo.seeding import store_fleet
from jobs_pipeline.demo.synthetic_fleet import generate_fleet
from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.orchestration.tags import JOB_TYPE_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.scratch_deployment import (
    INSTANCE_CONFIG,
    PRODUCTION_WORKSPACE,
    Daemon,
    dagster_environment,
    instance_for_environment,
    make_dagster_home,
    running_daemon,
)

DEFAULT_JOBS = 300
TARGET_JOBS_PER_MINUTE = 60.0
BURST_TIMEOUT = 1800.0


@dataclass(frozen=True)
class RunStages:
    """Seconds since the job was queued, for each stage of its run's life."""

    job_id: int
    queued: float  # epoch seconds
    created: float
    dequeued: float
    worker_up: float
    run_started: float
    claimed: float
    job_ended: float
    run_ended: float
    state: JobState


def job_type_limit_edit(job_type_limit: int | None) -> Any:
    """An edit of `dagster.yaml` that sets the runs of one job type at once (None: leaves it)."""
    if job_type_limit is None:
        return None

    def edit(config: dict[str, Any]) -> None:
        for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]:
            if limit["key"] == JOB_TYPE_TAG:
                limit["limit"] = job_type_limit

    return edit


def prepare_jobs(perfdb: PerfDB, count: int) -> list[int]:
    """One job per (object, alarm) pair, so that no two jobs take turns on the same pair."""
    fleet = generate_fleet(objects=-(-count // 4) + 1, days=1)
    upgrade_database(perfdb)
    store_fleet(perfdb, fleet)
    pairs = itertools.product(fleet.object_names, [alarm.alarm_id for alarm in fleet.alarms])
    return [
        create_alarm_job(
            perfdb,
            fleet,
            f"burst benchmark {index}",
            object_names=[object_name],
            alarm_ids=[alarm_id],
        )
        for index, (object_name, alarm_id) in zip(range(count + 1), pairs, strict=False)
    ]


def run_stages(instance: dg.DagsterInstance, job: Any, queued_at: datetime) -> RunStages:
    record = instance.get_run_record_by_id(job.run_id)
    if record is None:
        raise RuntimeError(f"job {job.id}: run {job.run_id} is unknown to Dagster")
    dequeued = worker_up = None
    for entry in instance.all_logs(job.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.RUN_STARTING and dequeued is None:
            dequeued = entry.timestamp
        if (
            event.event_type == dg.DagsterEventType.ENGINE_EVENT
            and worker_up is None
            and (event.message or "").startswith("Started process for run")
        ):
            worker_up = entry.timestamp
    if dequeued is None or worker_up is None or record.start_time is None:
        raise RuntimeError(f"job {job.id}: run {job.run_id} lacks start events")
    return RunStages(
        job_id=job.id,
        queued=queued_at.timestamp(),
        created=record.create_timestamp.timestamp(),
        dequeued=dequeued,
        worker_up=worker_up,
        run_started=record.start_time,
        claimed=job.started.timestamp(),
        job_ended=job.finished.timestamp(),
        run_ended=record.end_time or record.update_timestamp.timestamp(),
        state=job.state,
    )


def print_timeline(instance: dg.DagsterInstance, stages: list[RunStages], job: Any) -> None:
    """The events of the run whose slot time is the median, relative to its dequeue."""
    stage = next(s for s in stages if s.job_id == job.id)
    print(f"\nevents of job {job.id}'s run {job.run_id} (median slot time), seconds from dequeue:")
    for entry in instance.all_logs(job.run_id):
        event = entry.dagster_event
        what = event.event_type_value if event is not None else "log"
        step = (event.step_key if event is not None else entry.step_key) or ""
        text = ((event.message if event is not None else None) or entry.user_message or "")[:60]
        print(f"  {entry.timestamp - stage.dequeued:>7.3f}  {what:<22} {step:<32} {text}")


def most_at_once(intervals: Sequence[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at a tie)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    return max(itertools.accumulate(delta for _, delta in edges), default=0)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def report(
    stages: list[RunStages],
    wall: float,
    max_runs: int,
    type_limit: int | None,
    cpu: dict[str, float],
) -> None:
    jobs = len(stages)
    rate = 60.0 * jobs / wall
    claimed = [s.claimed - s.queued for s in stages]
    launched = most_at_once([(s.dequeued, s.run_ended) for s in stages])
    executing = most_at_once([(s.run_started, s.run_ended) for s in stages])
    limit = max_runs if type_limit is None else min(max_runs, type_limit)
    dequeues = sorted(s.dequeued for s in stages)
    rows = [
        ("queued -> run created (queue sensor)", [s.created - s.queued for s in stages]),
        ("run created -> dequeued (STARTING)", [s.dequeued - s.created for s in stages]),
        ("dequeued -> worker up", [s.worker_up - s.dequeued for s in stages]),
        ("worker up -> RUN_START", [s.run_started - s.worker_up for s in stages]),
        ("RUN_START -> claimed (plan op)", [s.claimed - s.run_started for s in stages]),
        ("claimed -> job ended", [s.job_ended - s.claimed for s in stages]),
        ("job ended -> run ended", [s.run_ended - s.job_ended for s in stages]),
        ("dequeued -> run ended (slot held)", [s.run_ended - s.dequeued for s in stages]),
        ("queued -> claimed", claimed),
        ("between two dequeues", [b - a for a, b in itertools.pairwise(dequeues)]),
    ]
    print(f"\n{jobs} one-step jobs in {wall:.1f} s; stages of a run (seconds)")
    header = f"{'stage':<40}{'p50':>8}{'p95':>8}{'max':>8}"
    print(header)
    print("-" * len(header))
    for label, values in rows:
        print(
            f"{label:<40}{statistics.median(values):>8.2f}{percentile(values, 0.95):>8.2f}"
            f"{max(values):>8.2f}"
        )
    not_finished = [s.job_id for s in stages if s.state != JobState.FINISHED]
    if not_finished:
        print(f"jobs not Finished: {len(not_finished)} (first ids {not_finished[:5]})")
    print(
        f"runs in flight at most: {launched} launched (STARTING to end), {executing} executing "
        f"(RUN_START to end); limit for one job type: {limit} "
        f"(max_concurrent_runs {max_runs}, per job type {type_limit})"
    )
    total = sum(cpu.values())
    roles = ", ".join(f"{role} {spent / jobs:.2f}" for role, spent in sorted(cpu.items()))
    # A code server replaced during the burst moves from its own role to the daemon's reaped.
    print(
        f"CPU of the daemon's process group: {total:.0f} s, {total / jobs:.2f} s per job ({roles})"
    )
    verdict_rate = "met" if rate >= TARGET_JOBS_PER_MINUTE and not not_finished else "MISSED"
    verdict_overlap = "met" if launched >= limit else "MISSED"
    print(
        f"throughput: {rate:.1f} jobs/min (target >= {TARGET_JOBS_PER_MINUTE:.0f}: "
        f"{verdict_rate}); queued -> claimed p50 {statistics.median(claimed):.2f} s, "
        f"p95 {percentile(claimed, 0.95):.2f} s; runs in flight up to {launched} of {limit} "
        f"({verdict_overlap})"
    )


def process_roles(pid: int, pgid: int, command: str) -> tuple[str, str]:
    """What a process of the daemon's group is, and what the children it reaped were."""
    if pid == pgid:
        # The daemon starts a new code server every minute and reaps the old one.
        return "daemon", "replaced code servers"
    if " api grpc " in command:
        return "code server", "run workers"
    if "forkserver" in command or "spawn_main" in command:
        return "run workers", "run workers"  # a forkserver, or a worker
    return "other", "other"


def group_cpu_seconds(pgid: int) -> dict[str, float]:
    """User + system CPU of the processes of a process group and of the children they reaped,
    by role (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[2]) != pgid:
            continue
        own, reaped = process_roles(int(entry.name), pgid, command)
        # utime, stime | cutime, cstime
        seconds[own] = seconds.get(own, 0.0) + sum(int(v) for v in fields[11:13]) / tick
        seconds[reaped] = seconds.get(reaped, 0.0) + sum(int(v) for v in fields[13:15]) / tick
    return seconds


def wait_for_burst(
    perfdb: PerfDB, warm_up: int, queued_at: dict[int, datetime], daemon: Daemon
) -> list[Job]:
    """The burst's jobs, once every one has ended after its queueing."""
    deadline = time.monotonic() + BURST_TIMEOUT
    while True:
        ended = [
            job
            for job in perfdb.queue.list_jobs(after_id=warm_up)
            if job.id in queued_at
            and job.finished is not None
            and job.started is not None
            and job.finished >= queued_at[job.id]
        ]
        if len(ended) == len(queued_at):
            return ended
        if daemon.process.poll() is not None:
            raise RuntimeError("the daemon exited during the burst")
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ended)} of {len(queued_at)} jobs ended in time")
        time.sleep(0.5)


def run_burst(args: argparse.Namespace, scratch: Path, stack: ExitStack) -> None:
    perf_url = stack.enter_context(scratch_postgresql("jp_bench_burst_perf"))
    dagster_url = stack.enter_context(scratch_postgresql("jp_bench_burst_dagster"))
    perfdb = PerfDB.connect(perf_url)
    stack.callback(perfdb.dispose)
    started = time.perf_counter()
    warm_up, *burst = prepare_jobs(perfdb, args.jobs)
    print(f"setup: {len(burst)} one-step jobs created in {time.perf_counter() - started:.1f} s")

    edit = job_type_limit_edit(args.job_type_limit)
    home = make_dagster_home(scratch / "home", args.dagster_yaml, edit)
    env = dagster_environment(home, perf_url, dagster_url)
    instance = stack.enter_context(instance_for_environment(env))
    runs_config = instance.get_concurrency_config().run_queue_config
    assert runs_config is not None, "the run queue is configured in dagster.yaml"
    type_limits = [
        limit["limit"]
        for limit in runs_config.tag_concurrency_limits
        if limit["key"] == JOB_TYPE_TAG
    ]
    daemon = stack.enter_context(running_daemon(args.workspace, env, scratch / "daemon.log"))
    started = time.perf_counter()
    perfdb.queue.queue_job(warm_up, actor="benchmark")
    wait_on_daemon(
        lambda: perfdb.queue.get_job(warm_up).finished is not None,
        "the warm-up job through the daemon",
        daemon,
    )
    print(f"daemon up, warm-up job ended after {time.perf_counter() - started:.1f} s")

    cpu_before = group_cpu_seconds(daemon.process.pid)
    queued_at = {
        job_id: perfdb.queue.queue_job(job_id, actor="frontend").last_state_change
        for job_id in burst
    }
    first = min(queued_at.values())
    ended = wait_for_burst(perfdb, warm_up, queued_at, daemon)
    last = max(job.finished for job in ended if job.finished is not None)
    cpu_after = group_cpu_seconds(daemon.process.pid)
    cpu = {
        role: cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)
        for role in cpu_after.keys() | cpu_before.keys()
    }
    wall = (last - first) / timedelta(seconds=1)
    # The runs' end events follow the jobs' ends by a moment.
    wait_on_daemon(
        lambda: all(
            (record := instance.get_run_record_by_id(job.run_id or "")) is not None
            and record.dagster_run.is_finished
            for job in ended
        ),
        "the burst's runs to end",
        daemon,
    )
    stages = [run_stages(instance, job, queued_at[job.id]) for job in ended]
    report(stages, wall, runs_config.max_concurrent_runs, min(type_limits, default=None), cpu)
    if args.timeline:
        by_slot = sorted(stages, key=lambda s: s.run_ended - s.dequeued)
        median_job = by_slot[len(by_slot) // 2].job_id
        print_timeline(instance, stages, next(job for job in ended if job.id == median_job))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument(
        "--dagster-yaml",
        type=Path,
        default=INSTANCE_CONFIG,
        help="instance configuration to copy (default: the repository's)",
    )
    parser.add_argument(
        "--job-type-limit", type=int, help="runs of one job type at once (dagster.yaml: 3)"
    )
    parser.add_argument("--workspace", type=Path, default=PRODUCTION_WORKSPACE)
    parser.add_argument(
        "--timeline", action="store_true", help="print the events of the median run"
    )
    args = parser.parse_args()
    # Stopped with SIGTERM, it still stops its daemon and drops its databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    with tempfile.TemporaryDirectory(prefix="jp_bench_burst_") as directory, ExitStack() as stack:
        run_burst(args, Path(directory), stack)


if __name__ == "__main__":
    main()
