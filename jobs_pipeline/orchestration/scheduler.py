"""The scheduler sensor: one Queued job per ended period of every enabled schedule.

The rows of `job_schedules` may change while everything runs; each tick reads them again.
Everything that makes a period happen once lives in the database (`perfdb/schedules.py`), so
several daemons, restarts and backfills never double a period. The sensor launches no runs
itself: the jobs it creates are Queued, and the queue sensor launches them like any other.
"""

from __future__ import annotations

import logging

import dagster as dg
import sqlalchemy as sa

from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.tags import PERIOD_END_TAG, PERIOD_START_TAG, SCHEDULE_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import is_transient
from jobs_pipeline.perfdb.schedules import SchedulePeriod, TickOutcome, utc_text

SCHEDULER_NAME = "perfdb_scheduler"
SCHEDULER_ACTOR = f"sensor:{SCHEDULER_NAME}"
# A tick that finds nothing due is one indexed query: cheap enough for a 1-minute schedule to
# be served within seconds of its period's end.
SCHEDULER_INTERVAL_SECONDS = 5
# Schedules handled per tick; the rest are due still and come next tick.
SCHEDULER_BATCH_SIZE = 100


def schedule_tags(period: SchedulePeriod) -> dict[str, str]:
    """The run tags of a scheduled job: the UI filters runs by schedule and by period."""
    return {
        SCHEDULE_TAG: period.schedule,
        PERIOD_START_TAG: utc_text(period.start),
        PERIOD_END_TAG: utc_text(period.end),
    }


def _describe(outcome: TickOutcome) -> list[tuple[str, str]]:
    """(level, message) lines for the sensor's log."""
    lines = []
    if outcome.disabled:
        lines.append(("warning", f"schedule {outcome.schedule!r} {outcome.disabled}"))
    lines.extend(
        (
            "info",
            f"schedule {outcome.schedule!r}: job {period.job_id} for "
            f"[{utc_text(period.start)}, {utc_text(period.end)})",
        )
        for period in outcome.created
    )
    if outcome.skipped and outcome.skipped_from and outcome.skipped_to:
        lines.append(
            (
                "warning",
                f"schedule {outcome.schedule!r}: skipped {outcome.skipped} periods "
                f"[{utc_text(outcome.skipped_from)}, {utc_text(outcome.skipped_to)}) past its "
                f"catch-up limit; 'jobs-pipeline schedule backfill' creates them",
            )
        )
    return lines


def run_scheduler_tick(db: PerfDB, log: logging.Logger | None = None) -> str:
    """One pass over the due schedules; returns what it did, in one line. A schedule that
    fails is logged and left for the next tick; the others go on."""
    now = db.schedules.clock()
    due = db.schedules.due(now, limit=SCHEDULER_BATCH_SIZE)
    created = disabled = skipped = failed = 0
    for schedule_id in due:
        try:
            outcome = db.schedules.run_due(schedule_id, now, actor=SCHEDULER_ACTOR)
        except Exception as error:
            if is_transient(error):
                raise
            failed += 1
            if log is not None:
                log.error(f"schedule id {schedule_id}: {_first_line(error)}")
            continue
        if outcome is None:
            continue
        created += len(outcome.created)
        skipped += outcome.skipped
        disabled += outcome.disabled is not None
        for level, message in _describe(outcome) if log is not None else ():
            getattr(log, level)(message)
    parts = [f"{len(due)} schedules due", f"{created} jobs created"]
    more = {"periods skipped": skipped, "schedules disabled": disabled, "schedules failed": failed}
    parts += [f"{n} {what}" for what, n in more.items() if n]
    return ", ".join(parts) if due else "no schedule due"


def _first_line(error: Exception) -> str:
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@dg.sensor(
    name=SCHEDULER_NAME,
    minimum_interval_seconds=SCHEDULER_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Creates one Queued job per ended period of every enabled schedule "
    "(job_schedules of the performance database).",
)
def perfdb_scheduler(context: dg.SensorEvaluationContext, perfdb: PerfDBResource):
    try:
        summary = run_scheduler_tick(perfdb.get(), context.log)
    except Exception as error:
        if not is_transient(error):
            raise
        return dg.SkipReason(f"performance database unreachable: {error}")
    return dg.SkipReason(summary)
