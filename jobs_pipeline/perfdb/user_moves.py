"""What a person or a frontend does to jobs: create, edit, queue, delete, cancel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, InvalidTransition
from jobs_pipeline.perfdb.queue_rows import (
    DEFAULT_ACTOR,
    JOB,
    TYPES,
    actor_label,
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
                    actor=actor_label(Actor.USER, actor),
                )
                .returning(JOB.c.id)
            ).scalar_one()
            if queue:
                self._queue(connection, job_id, actor)
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
        with begin(self.engine) as connection:
            self._queue(connection, job_id, actor)
            return self._get_job(connection, job_id)

    def _queue(self, connection: Connection, job_id: int, actor: str) -> None:
        # One UPDATE of the state, as a frontend's would be: the database counts the queueing,
        # clears the comment and cancel request, and puts a Finished job's steps back to Created.
        self._transition(connection, job_id, QUEUEABLE_STATES, JobState.QUEUED, Actor.USER, actor)

    def cancel_job(self, job_id: int, *, actor: str = DEFAULT_ACTOR) -> Job:
        """A person's cancel: a Created or Queued job fails now with `canceled by <actor>`; a
        Running one gets a cancel request that its run and the reconciler act on. A job that has
        ended has nothing to cancel (`InvalidTransition`)."""
        with begin(self.engine) as connection:
            state = self._lock_job(connection, job_id)
            if state in (JobState.FINISHED, JobState.FAILED):
                raise InvalidTransition(f"job {job_id} is {state.label}: nothing to cancel")
            if state == JobState.RUNNING:
                self._request_cancel(connection, job_id, actor)
            else:
                self._fail_canceled(connection, job_id, state, Actor.USER, actor, actor)
            return self._get_job(connection, job_id)
