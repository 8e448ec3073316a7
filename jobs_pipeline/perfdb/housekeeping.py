"""Housekeeping: removing ended jobs past their keep time, in transactions short enough that
running jobs never notice.

A Finished job is kept `keep_finished` after it ended, a Failed one `keep_failed` (longer by
default: a failure is worth looking at later). Queued, Running and Created jobs are never
touched. A job goes with its history and its steps; what its steps computed stays (the
occurrences' link to the step becomes NULL), and so does the ledger row of a scheduled job's
period (its job link becomes NULL), so its schedule never creates it again.

Each job is removed in several transactions of at most `batch_rows` rows (history rows first,
then the occurrences' step links, then the job with its steps). Each transaction first checks,
with the job row locked, that the job is still ended and past its time: a job a frontend queued
again in the meantime is left alone, whatever was already removed of its history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline import settings
from jobs_pipeline.calc.periods import format_duration
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.models import (
    AlarmOccurrenceRow,
    JobInstanceRow,
    JobStateHistoryRow,
    JobStepRow,
    table_of,
)
from jobs_pipeline.perfdb.schedules import Schedules
from jobs_pipeline.perfdb.states import JobState

JOB = table_of(JobInstanceRow)
STEP = table_of(JobStepRow)
HISTORY = table_of(JobStateHistoryRow)
OCCURRENCE = table_of(AlarmOccurrenceRow)

DEFAULT_KEEP_FINISHED = settings.KEEP_FINISHED.default
DEFAULT_KEEP_FAILED = settings.KEEP_FAILED.default
# Rows changed per transaction: a few milliseconds of locks on either database.
DEFAULT_BATCH_ROWS = 2_000


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How long ended jobs are kept after they ended (`finished`)."""

    keep_finished: timedelta = DEFAULT_KEEP_FINISHED
    keep_failed: timedelta = DEFAULT_KEEP_FAILED

    @classmethod
    def from_env(cls) -> Retention:
        """`JOBS_PIPELINE_KEEP_FINISHED` (default 90d) and `JOBS_PIPELINE_KEEP_FAILED` (365d)."""
        return cls(
            keep_finished=settings.KEEP_FINISHED.read(), keep_failed=settings.KEEP_FAILED.read()
        )

    def cutoffs(self, now: datetime) -> dict[JobState, datetime]:
        """Per ended state, the `finished` time before which a job goes."""
        return {
            JobState.FINISHED: now - self.keep_finished,
            JobState.FAILED: now - self.keep_failed,
        }

    def describe(self) -> str:
        return (
            f"Finished jobs kept {format_duration(self.keep_finished)}, "
            f"Failed jobs {format_duration(self.keep_failed)}"
        )


Cutoffs = Mapping[JobState, datetime]


@dataclass(frozen=True, kw_only=True)
class ExpiredJob:
    """An ended job past its keep time, with what hangs off it."""

    id: int
    state: JobState
    finished: datetime
    steps: int
    history_rows: int


@dataclass(frozen=True, kw_only=True)
class RemovedJob:
    """What removing one job deleted (and unlinked)."""

    job_id: int
    state: JobState
    steps: int
    history_rows: int
    occurrences_unlinked: int


def _expired(cutoffs: Cutoffs) -> sa.ColumnElement[bool]:
    return sa.or_(
        *(
            # At a keep time of 0, a job that ended in the clock's last tick goes too.
            sa.and_(JOB.c.state_id == int(state), JOB.c.finished <= cutoff)
            for state, cutoff in cutoffs.items()
        )
    )


class Housekeeping:
    """The queries that find and remove expired jobs."""

    def __init__(self, engine: Engine, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.engine = engine
        self.batch_rows = batch_rows

    def clock(self) -> datetime:
        """The database's current time: keep times count from it, never from this process."""
        return Schedules(self.engine).clock()

    def expired_jobs(
        self, cutoffs: Cutoffs, *, after_id: int = 0, limit: int = 100
    ) -> list[ExpiredJob]:
        """Ended jobs past their keep time in id order, with their step and history counts."""
        steps = (
            sa.select(sa.func.count())
            .select_from(STEP)
            .where(STEP.c.job_id == JOB.c.id)
            .scalar_subquery()
        )
        history = (
            sa.select(sa.func.count())
            .select_from(HISTORY)
            .where(HISTORY.c.job_id == JOB.c.id)
            .scalar_subquery()
        )
        query = (
            sa.select(JOB.c.id, JOB.c.state_id, JOB.c.finished, steps, history)
            .where(_expired(cutoffs), JOB.c.id > after_id)
            .order_by(JOB.c.id)
            .limit(limit)
        )
        with begin(self.engine, write=False) as connection:
            return [
                ExpiredJob(
                    id=row[0],
                    state=JobState(row[1]),
                    finished=row[2],
                    steps=row[3],
                    history_rows=row[4],
                )
                for row in connection.execute(query)
            ]

    def remove_job(self, job_id: int, cutoffs: Cutoffs) -> RemovedJob | None:
        """Removes one expired job in short transactions; None when it is no longer expired
        (queued again, or already removed by someone else)."""
        history_rows = 0
        while True:
            with begin(self.engine) as connection:
                if self._lock_if_expired(connection, job_id, cutoffs) is None:
                    return None
                batch = (
                    sa.select(HISTORY.c.id)
                    .where(HISTORY.c.job_id == job_id)
                    .limit(self.batch_rows)
                    .scalar_subquery()
                )
                deleted = connection.execute(HISTORY.delete().where(HISTORY.c.id.in_(batch)))
                history_rows += deleted.rowcount
            if deleted.rowcount < self.batch_rows:
                break
        unlinked = 0
        while True:
            with begin(self.engine) as connection:
                if self._lock_if_expired(connection, job_id, cutoffs) is None:
                    return None
                steps_of_job = sa.select(STEP.c.id).where(STEP.c.job_id == job_id)
                batch = (
                    sa.select(OCCURRENCE.c.id)
                    .where(OCCURRENCE.c.step_id.in_(steps_of_job))
                    .limit(self.batch_rows)
                    .scalar_subquery()
                )
                updated = connection.execute(
                    OCCURRENCE.update().where(OCCURRENCE.c.id.in_(batch)).values(step_id=None)
                )
                unlinked += updated.rowcount
            if updated.rowcount < self.batch_rows:
                break
        with begin(self.engine) as connection:
            state = self._lock_if_expired(connection, job_id, cutoffs)
            if state is None:
                return None
            steps = connection.execute(
                sa.select(sa.func.count()).select_from(STEP).where(STEP.c.job_id == job_id)
            ).scalar_one()
            # The steps go by ON DELETE CASCADE (the only way the database lets them go), and
            # with them any history row written since the batches above.
            late_history = connection.execute(
                sa.select(sa.func.count()).select_from(HISTORY).where(HISTORY.c.job_id == job_id)
            ).scalar_one()
            connection.execute(JOB.delete().where(JOB.c.id == job_id, _expired(cutoffs)))
        return RemovedJob(
            job_id=job_id,
            state=state,
            steps=steps,
            history_rows=history_rows + late_history,
            occurrences_unlinked=unlinked,
        )

    def reclaim_space(self) -> None:
        """Lets the next rows reuse the space of the removed ones. PostgreSQL: `VACUUM
        (ANALYZE)` of the tables housekeeping removed from (it blocks no reads or writes); left
        to autovacuum, a table waits for a fifth of its rows to be dead, some 18 days of removals
        at 90 days kept, and grows by as much. SQLite reuses freed pages by itself."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            tables = ", ".join(table.name for table in (HISTORY, STEP, JOB, OCCURRENCE))
            connection.exec_driver_sql(f"VACUUM (ANALYZE) {tables}")

    def _lock_if_expired(
        self, connection: Connection, job_id: int, cutoffs: Cutoffs
    ) -> JobState | None:
        """The job's state with its row locked (PostgreSQL; a SQLite writer holds the whole
        database), or None when it is not an expired job: a concurrent requeue waits for this
        short transaction, then wins."""
        query = sa.select(JOB.c.state_id).where(JOB.c.id == job_id, _expired(cutoffs))
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        state = connection.execute(query).scalar_one_or_none()
        return None if state is None else JobState(state)
