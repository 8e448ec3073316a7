"""Reading the job queue: job types, jobs, steps and their history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from jobs_pipeline.perfdb.clock import database_now, seconds_since
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import NotFound
from jobs_pipeline.perfdb.queue_rows import (
    HISTORY,
    JOB,
    SELECT_JOBS,
    STEP,
    TYPES,
    job_from_row,
    read_jobs_page,
    validate_against_schema,
)
from jobs_pipeline.perfdb.records import HistoryEntry, Job, JobAges, JobTypeSpec, Step
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.step_dependencies import read_step
from jobs_pipeline.perfdb.transitions import TransitionCore


class JobReads(TransitionCore):
    """Reads: nothing here writes."""

    def job_types(self) -> list[JobTypeSpec]:
        """The job types of this database, by name: what a frontend may create."""
        query = sa.select(TYPES.c.name, TYPES.c.description, TYPES.c.parameters_schema).order_by(
            TYPES.c.name
        )
        with begin(self.engine, write=False) as connection:
            return [
                JobTypeSpec(
                    name=row.name,
                    description=row.description,
                    parameters_schema=row.parameters_schema,
                )
                for row in connection.execute(query)
            ]

    def validate_parameters(self, type_name: str, parameters: Any) -> None:
        """Checks parameters against the type's JSON Schema; the error names the field."""
        with begin(self.engine, write=False) as connection:
            _, schema = self._job_type(connection, type_name)
        validate_against_schema(type_name, schema, parameters)

    def get_job(self, job_id: int) -> Job:
        with begin(self.engine, write=False) as connection:
            return self._get_job(connection, job_id)

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        type_name: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        last: int | None = None,
    ) -> list[Job]:
        """Jobs in id order (after `after_id`; the first `limit`, or the newest `last`); `state`
        uses the (state, id) index, so a batch of queued jobs costs the same however many
        finished jobs the table holds."""
        query = SELECT_JOBS
        if state is not None:
            query = query.where(JOB.c.state_id == state)
        if type_name is not None:
            query = query.where(TYPES.c.name == type_name)
        with begin(self.engine, write=False) as connection:
            return read_jobs_page(connection, query, after_id=after_id, limit=limit, last=last)

    def cancel_requests(self, *, limit: int) -> list[Job]:
        """Jobs with a cancel request that has not been handled, oldest request first."""
        query = (
            SELECT_JOBS.where(JOB.c.cancel_requested.is_not(None))
            .order_by(JOB.c.cancel_requested, JOB.c.id)
            .limit(limit)
        )
        with begin(self.engine, write=False) as connection:
            return [job_from_row(row) for row in connection.execute(query)]

    def history(self, job_id: int) -> list[HistoryEntry]:
        query = sa.select(HISTORY).where(HISTORY.c.job_id == job_id).order_by(HISTORY.c.id)
        with begin(self.engine, write=False) as connection:
            return [
                HistoryEntry(
                    job_id=row.job_id,
                    step_id=row.step_id,
                    from_state=None if row.from_state_id is None else JobState(row.from_state_id),
                    to_state=JobState(row.to_state_id),
                    actor=row.actor,
                    comment=row.comment,
                    changed_at=row.changed_at,
                )
                for row in connection.execute(query)
            ]

    def get_steps(self, job_id: int) -> list[Step]:
        with begin(self.engine, write=False) as connection:
            return self._get_steps(connection, job_id)

    def get_step(self, step_id: int) -> Step:
        with begin(self.engine, write=False) as connection:
            step = read_step(connection, step_id)
        if step is None:
            raise NotFound(f"step {step_id} does not exist")
        return step

    def latest_job_over(self, object_id: int, alarm_id: int) -> Job | None:
        """The newest job with a step for this (object, alarm), if any."""
        query = (
            SELECT_JOBS.join(STEP, STEP.c.job_id == JOB.c.id)
            .where(STEP.c.object_id == object_id, STEP.c.alarm_id == alarm_id)
            .order_by(JOB.c.id.desc())
            .limit(1)
        )
        with begin(self.engine, write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else job_from_row(row)

    def ages(self, job_ids: Sequence[int]) -> dict[int, JobAges]:
        """The jobs' silence and time in their state, computed by the database from its own
        timestamps and its own clock: no process's clock takes part in a liveness decision."""
        if not job_ids:
            return {}
        query = sa.select(
            JOB.c.id,
            seconds_since(
                sa.func.coalesce(JOB.c.heartbeat, JOB.c.started, JOB.c.last_state_change)
            ),
            seconds_since(JOB.c.last_state_change),
            database_now(),
        ).where(JOB.c.id.in_(list(job_ids)))
        with begin(self.engine, write=False) as connection:
            return {
                job_id: JobAges(
                    job_id=job_id,
                    silent_seconds=float(silent),
                    state_seconds=float(in_state),
                    database_time=now.timestamp(),
                )
                for job_id, silent, in_state, now in connection.execute(query)
            }
