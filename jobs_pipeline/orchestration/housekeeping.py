"""Housekeeping over both stores: expired jobs leave the performance database and their Dagster
runs (run, events, compute logs) leave the Dagster instance.

A job's runs are found by the job-id tag the queue sensor puts on every run. They are deleted
before the job's rows: a pass interrupted in between leaves a job whose runs are gone, which the
next pass removes; the other order would leave runs nobody can find by job any more. A job one of
whose runs has not ended yet (a cancel still in progress) is left for a later pass.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from jobs_pipeline.calc.periods import format_duration
from jobs_pipeline.orchestration.tags import JOB_ID_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.housekeeping import ExpiredJob, Retention
from jobs_pipeline.perfdb.states import JobState

# Expired jobs read per query; each is then removed on its own.
JOBS_PER_PAGE = 50


@dataclass(kw_only=True)
class HousekeepingReport:
    """What a pass removed (or, for a dry run, would remove) and how long it took."""

    dry_run: bool
    keep_finished: str
    keep_failed: str
    finished_jobs: int = 0
    failed_jobs: int = 0
    steps: int = 0
    history_rows: int = 0
    runs: int = 0
    events: int = 0
    occurrences_unlinked: int = 0
    # Jobs left for a later pass: one of their runs had not ended, or they were queued again.
    jobs_left: int = 0
    seconds: float = 0.0

    @property
    def jobs(self) -> int:
        return self.finished_jobs + self.failed_jobs

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "jobs": self.jobs, "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        text = (
            f"{verb} {self.jobs} jobs ({self.finished_jobs} Finished, {self.failed_jobs} "
            f"Failed), {self.steps} steps, {self.history_rows} history rows, {self.runs} "
            f"Dagster runs, {self.events} events in {self.seconds:.1f} s"
        )
        if self.jobs_left:
            text += f"; {self.jobs_left} jobs left for a later pass"
        return text


def runs_of_job(instance: dg.DagsterInstance, job_id: int) -> list[dg.DagsterRun]:
    """Every run the queue sensor (or a re-execution) made for the job."""
    return list(instance.get_runs(dg.RunsFilter(tags={JOB_ID_TAG: str(job_id)})))


def count_events(instance: dg.DagsterInstance, run_id: str) -> int:
    """The run's stored events: one COUNT on Dagster's SQL event log (SQLite and PostgreSQL),
    instead of loading and deserialising every event."""
    storage = instance.event_log_storage
    if isinstance(storage, SqlEventLogStorage):
        query = (
            sa.select(sa.func.count())
            .select_from(SqlEventLogStorageTable)
            .where(SqlEventLogStorageTable.c.run_id == run_id)
        )
        with storage.run_connection(run_id) as connection:
            return int(connection.execute(query).scalar_one())
    return len(instance.all_logs(run_id))


def delete_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """The run and its events (Dagster's `delete_run`), then its compute logs, which
    `delete_run` leaves behind."""
    instance.delete_run(run_id)
    try:
        instance.compute_log_manager.delete_logs(prefix=[run_id])
    except NotImplementedError:
        pass  # a compute log manager that keeps nothing to delete


def run_housekeeping(
    perfdb: PerfDB,
    instance: dg.DagsterInstance,
    retention: Retention,
    *,
    dry_run: bool = False,
    as_of: datetime | None = None,
    log: logging.Logger | Any | None = None,
) -> HousekeepingReport:
    """Removes the ended jobs past their keep time as of `as_of` (default: the database's
    clock), with their steps, history and Dagster runs; a dry run only counts them."""
    started = time.monotonic()
    report = HousekeepingReport(
        dry_run=dry_run,
        keep_finished=format_duration(retention.keep_finished),
        keep_failed=format_duration(retention.keep_failed),
    )
    cutoffs = retention.cutoffs(as_of or perfdb.housekeeping.clock())
    after_id = 0
    while jobs := perfdb.housekeeping.expired_jobs(cutoffs, after_id=after_id, limit=JOBS_PER_PAGE):
        for job in jobs:
            _handle(perfdb, instance, job, cutoffs, report, log)
        after_id = jobs[-1].id
    if report.jobs and not dry_run:
        perfdb.housekeeping.reclaim_space()
    report.seconds = time.monotonic() - started
    return report


def _handle(
    perfdb: PerfDB,
    instance: dg.DagsterInstance,
    job: ExpiredJob,
    cutoffs: dict[JobState, datetime],
    report: HousekeepingReport,
    log: Any,
) -> None:
    runs = runs_of_job(instance, job.id)
    unended = [run.run_id for run in runs if not run.is_finished]
    if unended:
        report.jobs_left += 1
        if log is not None:
            log.warning(f"job {job.id}: left for later, its run {unended[0]} has not ended")
        return
    events = sum(count_events(instance, run.run_id) for run in runs)
    if report.dry_run:
        _add(report, job.state, job.steps, job.history_rows, len(runs), events)
        return
    for run in runs:
        delete_run(instance, run.run_id)
    removed = perfdb.housekeeping.remove_job(job.id, cutoffs)
    if removed is None:
        report.jobs_left += 1
        report.runs += len(runs)
        report.events += events
        if log is not None:
            log.info(f"job {job.id}: its runs removed, the job left alone: no longer expired")
        return
    _add(report, removed.state, removed.steps, removed.history_rows, len(runs), events)
    report.occurrences_unlinked += removed.occurrences_unlinked
    if log is not None:
        log.info(
            f"job {job.id} ({removed.state.label}): removed with {removed.steps} steps, "
            f"{removed.history_rows} history rows, {len(runs)} runs, {events} events"
        )


def _add(
    report: HousekeepingReport,
    state: JobState,
    steps: int,
    history_rows: int,
    runs: int,
    events: int,
) -> None:
    if state == JobState.FINISHED:
        report.finished_jobs += 1
    else:
        report.failed_jobs += 1
    report.steps += steps
    report.history_rows += history_rows
    report.runs += runs
    report.events += events
