"""What a person or a frontend does to jobs: create, edit, queue, delete, cancel."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, InvalidTransition
from jobs_pipeline.perfdb.queue_rows import (
    DEFAULT_ACTOR,
    JOB,
    NO_CANCEL_REQUEST,
    TYPES,
    utcnow,
    validate_against_schema,
)
from jobs_pipeline.perfdb.records import Job, JobTypeSpec
from jobs_pipeline.perfdb.states import QUEUEABLE_STATES, Actor, JobState
from jobs_pipeline.perfdb.transitions import TransitionCore


class UserMoves(TransitionCore):
    """Moves a person or a frontend makes (`Actor.USER`)."""

    def upsert_job_types(self, specs: Iterable[JobTypeSpec]) -> None:
        with begin(self.engine) as connection:
            for spec in specs:
                values = {
                    "description": spec.description,
                    "parameters_schema": spec.parameters_schema,
                }
                changed = connection.execute(
                    TYPES.update().where(TYPES.c.name == spec.name).values(**values)
                ).rowcount
                if not changed:
                    connection.execute(TYPES.insert().values(name=spec.name, **values))

    def create_job(
        self,
        type_name: str,
        parameters: dict[str, Any],
        *,
        description: str = "",
        queue: bool = False,
        actor: str = DEFAULT_ACTOR,
    ) -> Job:
        now = utcnow()
        with begin(self.engine) as connection:
            type_id, schema = self._job_type(connection, type_name)
            validate_against_schema(type_name, schema, parameters)
            job_id = connection.execute(
                JOB.insert()
                .values(
                    type_id=type_id,
                    state_id=JobState.CREATED,
                    parameters=parameters,
                    description=description,
                    created=now,
                    last_state_change=now,
                    queue_count=0,
                )
                .returning(JOB.c.id)
            ).scalar_one()
            self._record(connection, job_id, None, None, JobState.CREATED, actor, None, now)
            if queue:
                self._queue(connection, job_id, actor, now)
            return self._get_job(connection, job_id)

    def update_job(
        self,
        job_id: int,
        *,
        parameters: dict[str, Any] | None = None,
        description: str | None = None,
        actor: str = DEFAULT_ACTOR,
    ) -> Job:
        """Changes parameters or description of a job that is still Created."""
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        with begin(self.engine) as connection:
            if parameters is not None:
                job = self._get_job(connection, job_id)
                _, schema = self._job_type(connection, job.type_name)
                validate_against_schema(job.type_name, schema, parameters)
                values["parameters"] = parameters
            if not values:
                raise InputError("nothing to update: give parameters or a description")
            self._transition(
                connection,
                job_id,
                (JobState.CREATED,),
                JobState.CREATED,
                Actor.USER,
                actor,
                values=values,
            )
            return self._get_job(connection, job_id)

    def delete_job(self, job_id: int) -> None:
        """Deletes a job that is not Running, with its steps and history."""
        with begin(self.engine) as connection:
            if self._lock_job(connection, job_id) == JobState.RUNNING:
                raise InvalidTransition(f"job {job_id} is Running and cannot be deleted")
            connection.execute(JOB.delete().where(JOB.c.id == job_id))

    def queue_job(self, job_id: int, *, actor: str = DEFAULT_ACTOR) -> Job:
        """Created, Failed or Finished -> Queued. Requeueing a Finished job recomputes every step;
        a Failed one runs only the steps not Finished."""
        now = utcnow()
        with begin(self.engine) as connection:
            self._queue(connection, job_id, actor, now)
            return self._get_job(connection, job_id)

    def _queue(self, connection: Connection, job_id: int, actor: str, now: datetime) -> None:
        previous = self._transition(
            connection,
            job_id,
            QUEUEABLE_STATES,
            JobState.QUEUED,
            Actor.USER,
            actor,
            values={
                "queue_count": JOB.c.queue_count + 1,
                "comment": None,
                "finished": None,
                **NO_CANCEL_REQUEST,
            },
            now=now,
        )
        if previous == JobState.FINISHED:
            self._reset_steps(connection, job_id, (JobState.FINISHED,), Actor.USER, actor, now)

    def cancel_job(self, job_id: int, *, actor: str = DEFAULT_ACTOR) -> Job:
        """A person's cancel: a Created or Queued job fails now with `canceled by <actor>`; a
        Running one gets a cancel request that its run and the reconciler act on. A job that has
        ended has nothing to cancel (`InvalidTransition`)."""
        now = utcnow()
        with begin(self.engine) as connection:
            state = self._lock_job(connection, job_id)
            if state in (JobState.FINISHED, JobState.FAILED):
                raise InvalidTransition(f"job {job_id} is {state.label}: nothing to cancel")
            if state == JobState.RUNNING:
                self._request_cancel(connection, job_id, actor, now)
            else:
                self._fail_canceled(connection, job_id, state, Actor.USER, actor, actor, now)
            return self._get_job(connection, job_id)
