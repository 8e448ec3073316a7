"""The timed calls of `benchmarks/year.py`, and their comparison with a copy of the same database
taken on an earlier day.

A figure measured on day 90 and again on day 365 moves with whatever else this shared machine
does at each moment (1.5x on sub-millisecond calls was seen between databases holding the same
rows). So the day-365 verdicts compare the database with a page-for-page copy of itself taken on
day 90 (PostgreSQL: a database made from it as template; SQLite: the backup API), both timed at
the same moment, call for call in alternating order, both warmed up the same way: the figure is
the median of the per-round ratios.
"""

from __future__ import annotations

import sqlite3
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from scratch import postgresql_copy  # benchmarks/scratch.py

from jobs_pipeline.jobs import create_job
from jobs_pipeline.orchestration.reconciler import Cursor, Reconciler
from jobs_pipeline.orchestration.resources import shared_perfdb
from jobs_pipeline.orchestration.sensors import SENSOR_BATCH_SIZE
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.states import JobState

ALARM_CALC = "Alarm Calculation"
WARM_UP_ROUNDS = 3
# Rounds per timed call: more for the cheap ones, whose spread is widest.
ROUNDS = {
    "sensor query": 300,
    "reconciler sweep": 100,
    "step writes": 120,
    "job show (day's job)": 40,
    "job list": 60,
}
# The queries on the hot path: they must cost the same on day 365 as on day 90.
HOT_PATH = ("sensor query", "reconciler sweep", "step writes", "job show (day's job)")


@dataclass(frozen=True)
class Fleet:
    type_id: int
    objects: dict[str, int]
    alarms: list[int]

    @property
    def steps_per_day(self) -> int:
        return len(self.objects) * len(self.alarms)


def running_job(perfdb: PerfDB, fleet: Fleet, steps: int, run_id: str) -> list[int]:
    """A Running job with `steps` Created steps, made through the state machine."""
    names = list(fleet.objects)
    job = create_job(
        perfdb,
        ALARM_CALC,
        {
            "object_names": names,
            "alarm_ids": fleet.alarms,
            "start": "2026-01-01 00:00:00",
            "end": "2026-01-02 00:00:00",
        },
        description="live",
        queue=True,
    )
    pairs = [(o, a) for o in fleet.objects.values() for a in fleet.alarms][:steps]
    created = perfdb.queue.create_steps(
        job.id, [NewStep(object_id=o, alarm_id=a) for o, a in pairs]
    )
    perfdb.queue.claim_job(job.id, run_id)
    return [step.id for step in created]


class Probes:
    """The timed calls of one database: the sensor's query, a reconciler sweep, one step's
    writes (start and finish of a step of a Running job), `job show` of the day's 2,000-step
    job and `job list` (the queries those commands run). `close()` removes the Running job the
    step writes used."""

    def __init__(
        self, perfdb: PerfDB, fleet: Fleet, instance: dg.DagsterInstance, day: int
    ) -> None:
        self.perfdb = perfdb
        jobs = perfdb.queue.list_jobs()
        self.listed_jobs = len(jobs)
        [self.shown_id] = [job.id for job in jobs if job.description == f"fleet day {day}"]
        self.reconciler = Reconciler(perfdb, instance)
        self.fleet = fleet
        self.run_id = ""
        self.step_ids: Iterator[int] = iter(())
        self.job_ids: list[int] = []
        self.calls: dict[str, Callable[[], object]] = {
            "sensor query": self.sensor_query,
            "reconciler sweep": lambda: self.reconciler.sweep(Cursor()),
            "step writes": self.step_writes,
            "job show (day's job)": self.job_show,
            "job list": self.job_list,
        }

    def sensor_query(self) -> object:
        return self.perfdb.queue.list_jobs(state=JobState.QUEUED, limit=SENSOR_BATCH_SIZE)

    def step_writes(self) -> None:
        step_id = next(self.step_ids, None)
        if step_id is None:  # a new Running job, its steps for the next rounds
            steps = min(self.fleet.steps_per_day, ROUNDS["step writes"] + WARM_UP_ROUNDS)
            self.run_id = f"run-probe-{uuid.uuid4().hex[:8]}"
            step_ids = running_job(self.perfdb, self.fleet, steps, self.run_id)
            self.job_ids.append(self.perfdb.queue.get_step(step_ids[0]).job_id)
            self.step_ids = iter(step_ids)
            step_id = next(self.step_ids)
        self.perfdb.queue.start_step(step_id, self.run_id)
        self.perfdb.queue.finish_step(step_id, run_id=self.run_id)

    def job_show(self) -> None:
        self.perfdb.queue.get_job(self.shown_id)
        self.perfdb.queue.get_steps(self.shown_id)
        self.perfdb.schedules.periods_of_jobs([self.shown_id])

    def job_list(self) -> None:
        jobs = self.perfdb.queue.list_jobs()
        self.perfdb.schedules.periods_of_jobs([job.id for job in jobs])

    def close(self) -> None:
        # Not part of the simulated year: the probe's jobs end, then go.
        for step_id in self.step_ids:
            self.perfdb.queue.start_step(step_id, self.run_id)
            self.perfdb.queue.finish_step(step_id, run_id=self.run_id)
        for job_id in self.job_ids:
            self.perfdb.queue.delete_job(job_id)


def _seconds(call: Callable[[], object]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def medians(probes: Probes) -> dict[str, float]:
    """Each call's median time over its rounds, after the warm-up rounds."""
    figures = {}
    for name, call in probes.calls.items():
        for _ in range(WARM_UP_ROUNDS):
            call()
        figures[name] = statistics.median(_seconds(call) for _ in range(ROUNDS[name]))
    return figures


@dataclass(frozen=True)
class Paired:
    """Medians of the same call on two databases timed in alternation, and the median of the
    rounds' ratios (now / then)."""

    now: float
    then: float
    ratio: float


def paired(now: Probes, then: Probes) -> dict[str, Paired]:
    figures = {}
    for name in now.calls:
        for _ in range(WARM_UP_ROUNDS):
            now.calls[name]()
            then.calls[name]()
        nows, thens, ratios = [], [], []
        for round_ in range(ROUNDS[name]):
            # Alternating which goes first: neither database always gets the warmer turn.
            if round_ % 2:
                b, a = _seconds(then.calls[name]), _seconds(now.calls[name])
            else:
                a, b = _seconds(now.calls[name]), _seconds(then.calls[name])
            nows.append(a)
            thens.append(b)
            ratios.append(a / b)
        figures[name] = Paired(
            now=statistics.median(nows),
            then=statistics.median(thens),
            ratio=statistics.median(ratios),
        )
    return figures


@contextmanager
def snapshot(perfdb: PerfDB, directory: Path, name: str) -> Iterator[PerfDB]:
    """A page-for-page copy of `perfdb` as it is now, dropped on exit."""
    url = perfdb.engine.url
    if url.get_backend_name() == "sqlite":
        target = directory / f"{name}.sqlite"
        with (
            sqlite3.connect(str(url.database)) as source,
            sqlite3.connect(str(target)) as copy,
        ):
            source.backup(copy)
        source.close()
        copy.close()
        copy_db = PerfDB.connect(f"sqlite:///{target}")
        try:
            yield copy_db
        finally:
            copy_db.dispose()
        return
    # A template must have no connections: this process's pools let theirs go.
    perfdb.dispose()
    shared_perfdb(url.render_as_string(hide_password=False)).dispose()
    with ExitStack() as stack:
        for attempt in range(20):
            try:
                copy_url = stack.enter_context(
                    postgresql_copy(url.render_as_string(hide_password=False), name)
                )
                break
            except sa.exc.OperationalError:  # autovacuum still on the source: a moment later
                if attempt == 19:
                    raise
                time.sleep(0.5)
        copy_db = PerfDB.connect(copy_url)
        stack.callback(copy_db.dispose)
        yield copy_db
