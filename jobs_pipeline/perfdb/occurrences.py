"""Alarm occurrences: replaced per (object, alarm, period) and read back for people."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.catalog import OBJECTS
from jobs_pipeline.perfdb.engine import begin
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
        spans: Sequence[tuple[datetime, datetime, float | None]],
        step_id: int | None = None,
    ) -> int:
        """Replaces, in one transaction, the occurrences of (object, alarm) that start inside
        [start, end) by `spans` (start, end, peak value). Returns how many were written."""
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
    spans: Sequence[tuple[datetime, datetime, float | None]],
    step_id: int | None,
) -> int:
    """Replaces the occurrences of (object, alarm) that start inside [start, end) within the
    caller's transaction. Writers of the same (object, alarm) take turns: on PostgreSQL a
    transaction-scoped advisory lock on the pair, on SQLite the database's write lock that every
    writing transaction holds. Without it, two deletes could both see the old rows gone and
    both insert; the unique key on (object, alarm, start) would then fail one of them."""
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.select(sa.func.pg_advisory_xact_lock(sa.literal(object_id), sa.literal(alarm_id)))
        )
    connection.execute(
        OCCURRENCES.delete().where(
            OCCURRENCES.c.object_id == object_id,
            OCCURRENCES.c.alarm_id == alarm_id,
            OCCURRENCES.c.start_time >= to_utc(start),
            OCCURRENCES.c.start_time < to_utc(end),
        )
    )
    if spans:
        connection.execute(
            OCCURRENCES.insert(),
            [
                {
                    "object_id": object_id,
                    "alarm_id": alarm_id,
                    "start_time": span_start,
                    "end_time": span_end,
                    "peak_value": peak,
                    "step_id": step_id,
                }
                for span_start, span_end, peak in spans
            ],
        )
    return len(spans)


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
    object_name: str
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
        .join(OBJECTS, steps.c.object_id == OBJECTS.c.id)
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
