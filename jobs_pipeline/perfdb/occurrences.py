"""Alarm occurrences: replaced where a calculation found them, and read back for people."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.catalog import OBJECTS
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.feature_values import VALUES
from jobs_pipeline.perfdb.models import (
    AlarmDefinitionRow,
    AlarmOccurrenceRow,
    JobStepRow,
    table_of,
)
from jobs_pipeline.perfdb.records import AlarmOccurrence
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.types import to_utc

OCCURRENCES = table_of(AlarmOccurrenceRow)


class OccurrenceSpan(NamedTuple):
    """An occurrence to store: ``[start, end)``, its peak value, and whether it is still active
    at the last sample there was (open: a later calculation closes or extends it)."""

    start: datetime
    end: datetime
    peak_value: float | None
    open: bool = False


@dataclass(frozen=True, kw_only=True)
class EpisodeContext:
    """What an alarm calculation needs to know besides the samples it reads.

    Attributes:
        open_start: Where the latest open occurrence of (object, alarm) starts, or None.
        first_sample: The first timestamp of the object's feature (NaN values included), or
            None when it has no samples.
        last_sample: Its last timestamp, or None.
    """

    open_start: datetime | None
    first_sample: datetime | None
    last_sample: datetime | None


# (start, end, peak value) or an `OccurrenceSpan`.
Span = tuple[datetime, datetime, float | None] | OccurrenceSpan


class Occurrences:
    """Owns `alarm_occurrences`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def replace(
        self,
        *,
        object_id: int,
        alarm_id: int,
        start: datetime,
        end: datetime,
        spans: Sequence[Span],
        step_id: int | None = None,
    ) -> int:
        """`replace_occurrences` in a transaction of its own."""
        with begin(self.engine) as connection:
            return replace_occurrences(
                connection,
                object_id=object_id,
                alarm_id=alarm_id,
                start=start,
                end=end,
                spans=spans,
                step_id=step_id,
            )

    def episode_context(self, object_id: int, alarm_id: int, feature_id: int) -> EpisodeContext:
        """What a calculation of (object, alarm) on its feature needs to know besides the
        samples it reads: one statement (three index probes), one transaction."""
        pair = (OCCURRENCES.c.object_id == object_id, OCCURRENCES.c.alarm_id == alarm_id)
        samples = (VALUES.c.object_id == object_id, VALUES.c.feature_id == feature_id)
        query = sa.select(
            sa.select(sa.func.max(OCCURRENCES.c.start_time))
            .where(*pair, OCCURRENCES.c.is_open)
            .scalar_subquery(),
            sa.select(sa.func.min(VALUES.c.timestamp)).where(*samples).scalar_subquery(),
            sa.select(sa.func.max(VALUES.c.timestamp)).where(*samples).scalar_subquery(),
        )
        with begin(self.engine, write=False) as connection:
            open_start, first, last = connection.execute(query).one()
        return EpisodeContext(open_start=open_start, first_sample=first, last_sample=last)

    def counts_by_job(self, job_id: int) -> list[tuple[str, int | None, int]]:
        """(object, alarm, occurrences written by that step) for each step of a job."""
        with begin(self.engine, write=False) as connection:
            return [tuple(row) for row in connection.execute(_counts_query(job_id))]

    def job_cells(self, job_id: int) -> list[JobCell]:
        """One row per step of the job: its object, alarm (with name), state, comment, and the
        occurrences it wrote with their total duration. One query."""
        with begin(self.engine, write=False) as connection:
            query = _cells_query(job_id, connection.dialect.name)
            return [
                JobCell(
                    step_id=row.id,
                    object_name=row.object_name,
                    alarm_id=row.alarm_id,
                    alarm_name=row.alarm_name,
                    state=JobState(row.state_id),
                    comment=row.comment,
                    occurrences=row.occurrences,
                    alarm_seconds=float(row.alarm_seconds or 0.0),
                    run_id=row.run_id,
                )
                for row in connection.execute(query)
            ]

    def list(
        self, *, object_name: str | None = None, alarm_id: int | None = None
    ) -> list[AlarmOccurrence]:
        query = (
            sa.select(
                OBJECTS.c.name,
                OCCURRENCES.c.alarm_id,
                OCCURRENCES.c.start_time,
                OCCURRENCES.c.end_time,
                OCCURRENCES.c.peak_value,
                OCCURRENCES.c.step_id,
                OCCURRENCES.c.is_open,
            )
            .join_from(OCCURRENCES, OBJECTS, OCCURRENCES.c.object_id == OBJECTS.c.id)
            .order_by(OBJECTS.c.name, OCCURRENCES.c.alarm_id, OCCURRENCES.c.start_time)
        )
        if object_name is not None:
            query = query.where(OBJECTS.c.name == object_name)
        if alarm_id is not None:
            query = query.where(OCCURRENCES.c.alarm_id == alarm_id)
        with begin(self.engine, write=False) as connection:
            return [
                AlarmOccurrence(
                    object_name=row.name,
                    alarm_id=row.alarm_id,
                    start=row.start_time,
                    end=row.end_time,
                    peak_value=row.peak_value,
                    step_id=row.step_id,
                    open=row.is_open,
                )
                for row in connection.execute(query)
            ]


def replace_occurrences(
    connection: Connection,
    *,
    object_id: int,
    alarm_id: int,
    start: datetime,
    end: datetime,
    spans: Sequence[Span],
    step_id: int | None,
    joins_earlier: bool = False,
    joins_later: bool = False,
    combine_peaks: Callable[[float, float], float] = max,
) -> int:
    """Replaces, within the caller's transaction, the stored occurrences of (object, alarm)
    that overlap ``[start, end)`` or any of ``spans`` (in chronological order) by ``spans``.
    Returns how many rows were written.

    ``joins_earlier`` says the first span may be the later part of an episode that began before
    what its calculation read: it then takes the start (and its peak counts) of a stored
    occurrence that overlaps or touches it and starts earlier. ``joins_later`` likewise lets the
    last span take the end and open flag of a stored one that ends later. ``combine_peaks``
    gives the peak of two parts of one episode.

    Writers of the same (object, alarm) take turns: on PostgreSQL a transaction-scoped advisory
    lock on the pair, on SQLite the database's write lock that every writing transaction holds.
    Without it, two deletes could both see the old rows gone and both insert; the unique key on
    (object, alarm, start) would then fail one of them."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.literal(object_id), sa.literal(alarm_id)))
        )
    rows = [_row(span) for span in spans]
    window_start, window_end = to_utc(start), to_utc(end)
    pair = (OCCURRENCES.c.object_id == object_id, OCCURRENCES.c.alarm_id == alarm_id)
    if rows:
        first, last = rows[0], rows[-1]
        if joins_earlier:
            earlier = connection.execute(
                sa.select(OCCURRENCES.c.start_time, OCCURRENCES.c.peak_value)
                .where(
                    *pair,
                    OCCURRENCES.c.start_time < first["start_time"],
                    OCCURRENCES.c.end_time >= first["start_time"],
                )
                .order_by(OCCURRENCES.c.start_time)
                .limit(1)
            ).first()
            if earlier is not None:
                first["start_time"] = earlier.start_time
                first["peak_value"] = _combined(combine_peaks, first["peak_value"], earlier)
        if joins_later:
            later = connection.execute(
                sa.select(OCCURRENCES.c.end_time, OCCURRENCES.c.peak_value, OCCURRENCES.c.is_open)
                .where(
                    *pair,
                    OCCURRENCES.c.start_time <= last["end_time"],
                    OCCURRENCES.c.end_time > last["end_time"],
                )
                .order_by(OCCURRENCES.c.end_time.desc())
                .limit(1)
            ).first()
            if later is not None:
                last["end_time"], last["is_open"] = later.end_time, later.is_open
                last["peak_value"] = _combined(combine_peaks, last["peak_value"], later)
        window_start = min(window_start, to_utc(first["start_time"]))
        window_end = max(window_end, to_utc(last["end_time"]))
    connection.execute(
        OCCURRENCES.delete().where(
            *pair, OCCURRENCES.c.start_time < window_end, OCCURRENCES.c.end_time > window_start
        )
    )
    if rows:
        connection.execute(
            OCCURRENCES.insert(),
            [
                {"object_id": object_id, "alarm_id": alarm_id, "step_id": step_id, **row}
                for row in rows
            ],
        )
    return len(rows)


def _row(span: Span) -> dict[str, Any]:
    return {
        "start_time": span[0],
        "end_time": span[1],
        "peak_value": span[2],
        "is_open": bool(span[3]) if len(span) > 3 else False,
    }


def _combined(
    combine: Callable[[float, float], float], peak: float | None, stored: Any
) -> float | None:
    if peak is None or stored.peak_value is None:
        return peak if stored.peak_value is None else stored.peak_value
    return combine(peak, stored.peak_value)


def _counts_query(job_id: int) -> sa.Select:  # type: ignore[type-arg]
    steps = table_of(JobStepRow)
    return (
        sa.select(OBJECTS.c.name, steps.c.alarm_id, sa.func.count(OCCURRENCES.c.id))
        .select_from(steps)
        .join(OBJECTS, steps.c.object_id == OBJECTS.c.id)
        .outerjoin(OCCURRENCES, OCCURRENCES.c.step_id == steps.c.id)
        .where(steps.c.job_id == job_id)
        .group_by(OBJECTS.c.name, steps.c.alarm_id, steps.c.position)
        .order_by(steps.c.position)
    )


@dataclass(frozen=True, kw_only=True)
class JobCell:
    """What one step of a job found, for summaries and pictures."""

    step_id: int
    object_name: str | None
    alarm_id: int | None
    alarm_name: str | None
    state: JobState
    comment: str | None
    occurrences: int
    alarm_seconds: float
    run_id: str | None = None  # the run that last started the step


def _cells_query(job_id: int, dialect: str) -> sa.Select:  # type: ignore[type-arg]
    steps = table_of(JobStepRow)
    alarms = table_of(AlarmDefinitionRow)
    seconds: sa.ColumnElement[Any]
    if dialect == "postgresql":
        seconds = sa.func.sum(
            sa.extract("epoch", OCCURRENCES.c.end_time - OCCURRENCES.c.start_time)
        )
    else:  # SQLite keeps timestamps as text
        seconds = (
            sa.func.sum(
                sa.func.julianday(OCCURRENCES.c.end_time)
                - sa.func.julianday(OCCURRENCES.c.start_time)
            )
            * 86400.0
        )
    return (
        sa.select(
            steps.c.id,
            OBJECTS.c.name.label("object_name"),
            steps.c.alarm_id,
            alarms.c.name.label("alarm_name"),
            steps.c.state_id,
            steps.c.comment,
            steps.c.run_id,
            sa.func.count(OCCURRENCES.c.id).label("occurrences"),
            seconds.label("alarm_seconds"),
        )
        .select_from(steps)
        # Outer: steps of some job types are about no object (a file of a Data Import).
        .outerjoin(OBJECTS, steps.c.object_id == OBJECTS.c.id)
        .outerjoin(alarms, steps.c.alarm_id == alarms.c.id)
        .outerjoin(OCCURRENCES, OCCURRENCES.c.step_id == steps.c.id)
        .where(steps.c.job_id == job_id)
        .group_by(
            steps.c.id,
            OBJECTS.c.name,
            steps.c.alarm_id,
            alarms.c.name,
            steps.c.state_id,
            steps.c.comment,
            steps.c.run_id,
            steps.c.position,
        )
        .order_by(steps.c.position)
    )
