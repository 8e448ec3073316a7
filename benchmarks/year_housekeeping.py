"""The year benchmark's housekeeping passes, and a job writing its steps beside them
(`benchmarks/year.py`)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import dagster as dg
from year_probes import Fleet, running_job  # benchmarks/year_probes.py
from year_seed import DAY_ZERO  # benchmarks/year_seed.py

from jobs_pipeline.orchestration.housekeeping import run_housekeeping
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.housekeeping import Retention


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


def housekeep_day(
    db: PerfDB,
    fleet: Fleet,
    instance: dg.DagsterInstance,
    retention: Retention,
    day: int,
    times: PassTimes,
    *,
    beside_writer: bool,
) -> None:
    """One daily housekeeping pass; beside a job writing its steps when asked (its waits are
    recorded)."""
    if not beside_writer:
        housekeeping_pass(db, instance, retention, day, times)
        return
    writer = StepWriter(db, fleet)
    writer.start()
    writer.ready.wait(60)
    housekeeping_pass(db, instance, retention, day, times)
    writer.stop.set()
    writer.join()
    times.waits.extend(writer.waits)
