"""The job queue: every query and every state transition of jobs and steps.

Each transition is one guarded UPDATE (`... WHERE state IN <expected>`); when it changes no row,
the current state is read back and reported in an `InvalidTransition` (or `NotFound`). Each
transition also writes a `job_state_history` row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, overload

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import (
    InputError,
    InvalidParameters,
    InvalidTransition,
    JobCanceled,
    LostOwnership,
    NotFound,
)
from jobs_pipeline.perfdb.models import (
    JobInstanceRow,
    JobStateHistoryRow,
    JobStepRow,
    JobType,
    ObjectRow,
    table_of,
)
from jobs_pipeline.perfdb.records import HistoryEntry, Job, JobTypeSpec, NewStep, Step, StepResult
from jobs_pipeline.perfdb.states import (
    JOB_TRANSITIONS,
    QUEUEABLE_STATES,
    STEP_TRANSITIONS,
    Actor,
    JobState,
    check_transitions,
)

JOB = table_of(JobInstanceRow)
STEP = table_of(JobStepRow)
HISTORY = table_of(JobStateHistoryRow)
TYPES = table_of(JobType)
OBJECTS = table_of(ObjectRow)

DEFAULT_ACTOR = "api"


def utcnow() -> datetime:
    return datetime.now(UTC)


def failed_steps_comment(failed: int, total: int) -> str:
    """The seed's wording for a job with failed steps."""
    return f"{failed} ({failed / total:.2%}) steps failed"


def job_outcome(counts: Mapping[JobState, int]) -> tuple[JobState, str | None]:
    """A job's final state and comment from its steps' states: Finished when every step
    finished; else Failed, telling steps that failed from steps that never ran
    (`1 (1.79%) steps failed, 55 not run`)."""
    total = sum(counts.values())
    if not total:
        return JobState.FAILED, "no steps were created"
    failed = counts.get(JobState.FAILED, 0) + counts.get(JobState.RUNNING, 0)
    not_run = counts.get(JobState.CREATED, 0)
    if not failed and not not_run:
        return JobState.FINISHED, None
    if not failed:
        return JobState.FAILED, f"{not_run} of {total} steps not run"
    comment = failed_steps_comment(failed, total)
    return JobState.FAILED, f"{comment}, {not_run} not run" if not_run else comment


MAX_COMMENT_CHARS = 2000


@overload
def bounded(comment: str, limit: int = ...) -> str: ...
@overload
def bounded(comment: None, limit: int = ...) -> None: ...
@overload
def bounded(comment: str | None, limit: int = ...) -> str | None: ...
def bounded(comment: str | None, limit: int = MAX_COMMENT_CHARS) -> str | None:
    """Comments are for people: a few kB at most, however long the reason."""
    if comment is None or len(comment) <= limit:
        return comment
    cut = len(comment) - limit
    return f"{comment[:limit]}... ({cut} more characters)"


# A cancel request is done with once the job is final or queued again.
_NO_CANCEL_REQUEST = {"cancel_requested": None, "cancel_requested_by": None}

# `_step_transition`'s default: the caller does not restrict which run a Running step is in.
ANY_RUN: Final = object()


def _labels(states: Iterable[JobState]) -> str:
    return ", ".join(state.label for state in states)


_JOB_COLUMNS = (
    JOB.c.id,
    TYPES.c.name.label("type_name"),
    JOB.c.state_id,
    JOB.c.parameters,
    JOB.c.description,
    JOB.c.comment,
    JOB.c.created,
    JOB.c.started,
    JOB.c.finished,
    JOB.c.last_state_change,
    JOB.c.queue_count,
    JOB.c.run_id,
    JOB.c.heartbeat,
    JOB.c.cancel_requested,
    JOB.c.cancel_requested_by,
)
_SELECT_JOBS = sa.select(*_JOB_COLUMNS).join_from(JOB, TYPES, JOB.c.type_id == TYPES.c.id)

_SELECT_STEPS = sa.select(
    STEP.c.id,
    STEP.c.job_id,
    STEP.c.position,
    STEP.c.object_id,
    OBJECTS.c.name.label("object_name"),
    STEP.c.alarm_id,
    STEP.c.feature_id,
    STEP.c.state_id,
    STEP.c.comment,
    STEP.c.created,
    STEP.c.started,
    STEP.c.finished,
    STEP.c.last_state_change,
    STEP.c.attempts,
    STEP.c.run_id,
    STEP.c.details,
).join_from(STEP, OBJECTS, STEP.c.object_id == OBJECTS.c.id)


def _job(row: Any) -> Job:
    values = row._asdict()
    values["state"] = JobState(values.pop("state_id"))
    return Job(**values)


def _step(row: Any) -> Step:
    values = row._asdict()
    values["state"] = JobState(values.pop("state_id"))
    return Step(**values)


class JobQueue:
    """Owns the job queue tables of one performance database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- job types ---------------------------------------------------------------------------

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

    def _job_type(self, connection: Connection, type_name: str) -> tuple[int, dict[str, Any]]:
        row = connection.execute(
            sa.select(TYPES.c.id, TYPES.c.parameters_schema).where(TYPES.c.name == type_name)
        ).first()
        if row is None:
            known = ", ".join(
                repr(name) for name in connection.scalars(sa.select(TYPES.c.name).order_by("name"))
            )
            raise NotFound(f"unknown job type {type_name!r} (known: {known or 'none'})")
        return row.id, row.parameters_schema

    # --- jobs --------------------------------------------------------------------------------

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

    def get_job(self, job_id: int) -> Job:
        with begin(self.engine, write=False) as connection:
            return self._get_job(connection, job_id)

    def _get_job(self, connection: Connection, job_id: int) -> Job:
        row = connection.execute(_SELECT_JOBS.where(JOB.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        return _job(row)

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        type_name: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        exclude_test_jobs: bool = False,
    ) -> list[Job]:
        """Jobs in id order; `state` uses the (state, id) index, so a batch of queued jobs costs
        the same however many finished jobs the table holds."""
        query = _SELECT_JOBS.where(JOB.c.id > after_id).order_by(JOB.c.id).limit(limit)
        if state is not None:
            query = query.where(JOB.c.state_id == state)
        if type_name is not None:
            query = query.where(TYPES.c.name == type_name)
        if exclude_test_jobs:
            # The seed's rule: a description containing "test" marks a test job.
            query = query.where(sa.func.lower(JOB.c.description).not_like("%test%"))
        with begin(self.engine, write=False) as connection:
            return [_job(row) for row in connection.execute(query)]

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
                **_NO_CANCEL_REQUEST,
            },
            now=now,
        )
        if previous == JobState.FINISHED:
            self._reset_steps(connection, job_id, (JobState.FINISHED,), Actor.USER, actor, now)

    def claim_job(
        self,
        job_id: int,
        run_id: str | None,
        *,
        from_states: Sequence[JobState] = (JobState.QUEUED,),
        actor: str | None = None,
    ) -> Job:
        """Queued -> Running for the run that will execute the job; from then on that run holds
        it. Atomic: of several runs racing for the same job exactly one wins, the others get
        `InvalidTransition`."""
        now = utcnow()
        with begin(self.engine) as connection:
            self._transition(
                connection,
                job_id,
                from_states,
                JobState.RUNNING,
                Actor.RUN,
                actor or _run_actor(run_id),
                values={
                    "run_id": run_id,
                    "started": now,
                    "finished": None,
                    "comment": None,
                    "heartbeat": now,
                },
                now=now,
            )
            return self._get_job(connection, job_id)

    def reopen_job(self, job_id: int, run_id: str, *, actor: str | None = None) -> Job:
        """Failed or Finished -> Running for a re-execution started from the Dagster UI.
        Reopening a Finished job puts all its steps back to Created (recompute all)."""
        now = utcnow()
        actor = actor or f"run:{run_id}"
        with begin(self.engine) as connection:
            previous = self._transition(
                connection,
                job_id,
                (JobState.FAILED, JobState.FINISHED),
                JobState.RUNNING,
                Actor.RUN,
                actor,
                values={
                    "run_id": run_id,
                    "finished": None,
                    "comment": None,
                    "heartbeat": now,
                    **_NO_CANCEL_REQUEST,
                },
                now=now,
            )
            if previous == JobState.FINISHED:
                self._reset_steps(connection, job_id, (JobState.FINISHED,), Actor.RUN, actor, now)
            return self._get_job(connection, job_id)

    def fail_job(
        self,
        job_id: int,
        comment: str,
        *,
        from_states: Sequence[JobState] = (JobState.QUEUED,),
        who: Actor = Actor.SENSOR,
        run_id: str | None = None,
        actor: str = DEFAULT_ACTOR,
        queue_count: int | None = None,
    ) -> Job:
        """Marks a job Failed without running it, e.g. a queued row with bad parameters. From
        Running, only the run holding the job (`run_id`) may do this. With `queue_count`, only
        while the job is still in that queueing (a job requeued meanwhile is left alone)."""
        now = utcnow()
        comment = bounded(comment)
        with begin(self.engine) as connection:
            if JobState.RUNNING in from_states:
                _check_holder(self._lock_holder(connection, job_id), run_id)
            if queue_count is not None:
                _check_queue_count(connection, job_id, queue_count)
            self._fail(connection, job_id, from_states, who, actor, comment, now)
            return self._get_job(connection, job_id)

    def finalise_job(
        self,
        job_id: int,
        *,
        run_id: str | None = None,
        run_over: bool = False,
        actor: str = DEFAULT_ACTOR,
    ) -> Job:
        """Writes the final state of a Running job that `run_id` holds once none of its steps is
        left to run (a no-op otherwise; the last `finish_step` normally does this already).
        With `run_over`, the run has ended: steps it did not run count as they are. A job held
        by another run raises `LostOwnership`; a job already final is returned as it is."""
        with begin(self.engine) as connection:
            holder = self._lock_holder(connection, job_id)
            if holder.state_id == JobState.RUNNING:
                _check_holder(holder, run_id)
                self._finalise_job(
                    connection, job_id, run_id, Actor.RUN, actor, utcnow(), run_over=run_over
                )
            return self._get_job(connection, job_id)

    # --- cancellation and liveness -----------------------------------------------------------

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

    def cancel_requests(self, *, limit: int) -> list[Job]:
        """Jobs with a cancel request that has not been handled, oldest request first."""
        query = (
            _SELECT_JOBS.where(JOB.c.cancel_requested.is_not(None))
            .order_by(JOB.c.cancel_requested, JOB.c.id)
            .limit(limit)
        )
        with begin(self.engine, write=False) as connection:
            return [_job(row) for row in connection.execute(query)]

    def handle_cancel_request(self, job_id: int, *, actor: str = "reconciler") -> Job:
        """Acts on a cancel request written by a frontend: Created or Queued -> Failed now;
        Running stays Running (its run must be terminated, then the run's steps fail with
        `canceled`); a job that already ended keeps its state and the request is cleared with a
        comment in its history."""
        now = utcnow()
        with begin(self.engine) as connection:
            row = self._lock_holder(connection, job_id)
            state = JobState(row.state_id)
            if row.cancel_requested is not None:
                who = row.cancel_requested_by or "frontend"
                if state in (JobState.CREATED, JobState.QUEUED):
                    self._fail_canceled(
                        connection, job_id, state, Actor.RECONCILER, who, actor, now
                    )
                elif state in (JobState.FINISHED, JobState.FAILED):
                    connection.execute(
                        JOB.update().where(JOB.c.id == job_id).values(**_NO_CANCEL_REQUEST)
                    )
                    self._record(
                        connection,
                        job_id,
                        None,
                        state,
                        state,
                        actor,
                        f"cancel request by {who} cleared: the job had already ended",
                        now,
                    )
            return self._get_job(connection, job_id)

    def _request_cancel(self, connection: Connection, job_id: int, who: str, now: datetime) -> None:
        connection.execute(
            JOB.update()
            .where(JOB.c.id == job_id, JOB.c.cancel_requested.is_(None))
            .values(cancel_requested=now, cancel_requested_by=who[:200])
        )
        self._record(
            connection,
            job_id,
            None,
            JobState.RUNNING,
            JobState.RUNNING,
            who,
            f"cancel requested by {who}",
            now,
        )

    def _fail_canceled(
        self,
        connection: Connection,
        job_id: int,
        state: JobState,
        who: Actor,
        requested_by: str,
        actor: str,
        now: datetime,
    ) -> None:
        self._fail(
            connection, job_id, (state,), who, actor, bounded(f"canceled by {requested_by}"), now
        )

    def _fail(
        self,
        connection: Connection,
        job_id: int,
        from_states: Sequence[JobState],
        who: Actor,
        actor: str,
        comment: str,
        now: datetime,
    ) -> None:
        """A job that ends Failed without its steps being run (again): refused, canceled."""
        self._transition(
            connection,
            job_id,
            from_states,
            JobState.FAILED,
            who,
            actor,
            values={"comment": comment, "finished": now, **_NO_CANCEL_REQUEST},
            comment=comment,
            now=now,
        )

    def beat(self, job_id: int, run_id: str) -> bool:
        """The holding run's heartbeat; False once the run no longer holds the job."""
        with begin(self.engine) as connection:
            changed = connection.execute(
                JOB.update()
                .where(
                    JOB.c.id == job_id,
                    JOB.c.state_id == JobState.RUNNING,
                    JOB.c.run_id == run_id,
                )
                .values(heartbeat=utcnow())
            ).rowcount
        return bool(changed)

    def beat_queued(self, job_id: int) -> bool:
        """The heartbeat of a run that is alive but has not claimed the Queued job yet (its plan
        op waits for a worker or a process); False once the job is no longer Queued."""
        with begin(self.engine) as connection:
            changed = connection.execute(
                JOB.update()
                .where(JOB.c.id == job_id, JOB.c.state_id == JobState.QUEUED)
                .values(heartbeat=utcnow())
            ).rowcount
        return bool(changed)

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

    # --- steps -------------------------------------------------------------------------------

    def create_steps(
        self, job_id: int, steps: Sequence[NewStep], *, actor: str = DEFAULT_ACTOR
    ) -> list[Step]:
        """Creates a job's steps once; a job that already has steps keeps them."""
        now = utcnow()
        with begin(self.engine) as connection:
            self._lock_job(connection, job_id)
            existing = connection.execute(
                sa.select(sa.func.count()).select_from(STEP).where(STEP.c.job_id == job_id)
            ).scalar_one()
            if existing == 0 and steps:
                connection.execute(
                    STEP.insert(),
                    [
                        {
                            "job_id": job_id,
                            "position": position,
                            "object_id": step.object_id,
                            "alarm_id": step.alarm_id,
                            "feature_id": step.feature_id,
                            "state_id": JobState.CREATED,
                            "created": now,
                            "last_state_change": now,
                            "attempts": 0,
                        }
                        for position, step in enumerate(steps)
                    ],
                )
                step_ids = connection.scalars(
                    sa.select(STEP.c.id).where(STEP.c.job_id == job_id).order_by(STEP.c.position)
                ).all()
                connection.execute(
                    HISTORY.insert(),
                    [
                        {
                            "job_id": job_id,
                            "step_id": step_id,
                            "from_state_id": None,
                            "to_state_id": JobState.CREATED,
                            "actor": actor,
                            "changed_at": now,
                        }
                        for step_id in step_ids
                    ],
                )
            return self._get_steps(connection, job_id)

    def get_steps(self, job_id: int) -> list[Step]:
        with begin(self.engine, write=False) as connection:
            return self._get_steps(connection, job_id)

    def _get_steps(self, connection: Connection, job_id: int) -> list[Step]:
        query = _SELECT_STEPS.where(STEP.c.job_id == job_id).order_by(STEP.c.position)
        return [_step(row) for row in connection.execute(query)]

    def latest_job_over(self, object_id: int, alarm_id: int) -> Job | None:
        """The newest job with a step for this (object, alarm), if any."""
        query = (
            _SELECT_JOBS.join(STEP, STEP.c.job_id == JOB.c.id)
            .where(STEP.c.object_id == object_id, STEP.c.alarm_id == alarm_id)
            .order_by(JOB.c.id.desc())
            .limit(1)
        )
        with begin(self.engine, write=False) as connection:
            row = connection.execute(query).first()
        return None if row is None else _job(row)

    def steps_changed_since(self, job_id: int, since: datetime) -> list[Step]:
        """The job's steps whose state changed after `since` (for following a job live)."""
        query = _SELECT_STEPS.where(
            STEP.c.job_id == job_id, STEP.c.last_state_change > since
        ).order_by(STEP.c.last_state_change, STEP.c.id)
        with begin(self.engine, write=False) as connection:
            return [_step(row) for row in connection.execute(query)]

    def get_step(self, step_id: int) -> Step:
        with begin(self.engine, write=False) as connection:
            row = connection.execute(_SELECT_STEPS.where(STEP.c.id == step_id)).first()
        if row is None:
            raise NotFound(f"step {step_id} does not exist")
        return _step(row)

    def start_step(self, step_id: int, run_id: str | None, *, actor: str | None = None) -> Step:
        """Created or Failed -> Running (a failed step may be re-run), for the run holding the
        job; that run may also restart its own Running step (a retry, a redelivered task). A
        job with a cancel request starts no more steps: the step fails with `canceled` and
        `JobCanceled` is raised."""
        now = utcnow()
        actor = actor or _run_actor(run_id)
        with begin(self.engine) as connection:
            holder = self._lock_holder_of_step(connection, step_id)
            job_id = holder.id
            _check_holder(holder, run_id)
            if holder.cancel_requested is not None:
                reason = f"canceled by {holder.cancel_requested_by or 'frontend'}"
                self._step_transition(
                    connection,
                    step_id,
                    (JobState.CREATED, JobState.FAILED, JobState.RUNNING),
                    JobState.FAILED,
                    Actor.RUN,
                    actor,
                    values={"finished": now, "comment": "canceled", "run_id": run_id},
                    comment="canceled",
                    now=now,
                    run_id=run_id,
                )
                self._finalise_job(connection, job_id, run_id, Actor.RUN, actor, now)
                # The failed step must be committed before the op hears of the cancel.
                canceled = JobCanceled(f"job {job_id} was {reason}: step {step_id} not started")
            else:
                canceled = None
                self._step_transition(
                    connection,
                    step_id,
                    (JobState.CREATED, JobState.FAILED, JobState.RUNNING),
                    JobState.RUNNING,
                    Actor.RUN,
                    actor,
                    values={
                        "run_id": run_id,
                        "started": now,
                        "finished": None,
                        "comment": None,
                        "attempts": STEP.c.attempts + 1,
                    },
                    now=now,
                    run_id=run_id,
                )
                row = connection.execute(_SELECT_STEPS.where(STEP.c.id == step_id)).one()
        if canceled is not None:
            raise canceled
        return _step(row)

    def finish_step(
        self,
        step_id: int,
        error: str | None = None,
        *,
        run_id: str | None = None,
        actor: str | None = None,
        note: str | None = None,
        details: dict[str, Any] | None = None,
        write: Callable[[Connection], None] | None = None,
    ) -> StepResult:
        """Running -> Finished, or Failed with `error` as its comment, for the run holding the
        job (`LostOwnership` otherwise, and nothing is written). A Finished step's comment is
        `note`; `details` (JSON) is stored either way, and `write` stores the step's results in
        this same transaction. When no step of the job is left to run, the job's final state is
        written in this same transaction too."""
        now = utcnow()
        state = JobState.FINISHED if error is None else JobState.FAILED
        actor = actor or _run_actor(run_id)
        comment = bounded(error or note)
        with begin(self.engine) as connection:
            holder = self._lock_holder_of_step(connection, step_id)
            job_id = holder.id
            _check_holder(holder, run_id)
            self._step_transition(
                connection,
                step_id,
                (JobState.RUNNING,),
                state,
                Actor.RUN,
                actor,
                values={"finished": now, "comment": comment, "details": details},
                comment=comment,
                now=now,
                run_id=run_id,
            )
            if write is not None and error is None:
                write(connection)
            job_state, job_comment = self._finalise_job(
                connection, job_id, run_id, Actor.RUN, actor, now
            )
            return StepResult(
                step_id=step_id,
                job_id=job_id,
                state=state,
                job_state=job_state,
                job_comment=job_comment,
            )

    def fail_running_steps_of_run(
        self,
        run_id: str,
        reason: str,
        *,
        actor: str | None = None,
        op_failures: Mapping[int, str] | None = None,
        step_comment: str | None = None,
    ) -> list[StepResult]:
        """Reconciles a run that ended or went silent: its steps still Running become Failed
        with `step_comment` (default: `reason`), steps whose op failed before they started
        become Failed with the op's error (`op_failures`, by step id), and its job, if that run
        still holds it, is finalised with `reason`. A job with a cancel request also fails its
        steps that never started, with `canceled`. Steps and jobs that a newer run has taken
        over are left alone, so a late call is harmless and a repeated one changes nothing."""
        now = utcnow()
        actor = actor or "reconciler"
        reason = bounded(reason)
        step_comment = bounded(step_comment or reason)
        results: list[StepResult] = []
        with begin(self.engine) as connection:
            job_ids = connection.scalars(
                sa.select(JOB.c.id)
                .where(JOB.c.run_id == run_id, JOB.c.state_id == JobState.RUNNING)
                .union(
                    sa.select(STEP.c.job_id).where(
                        STEP.c.run_id == run_id, STEP.c.state_id == JobState.RUNNING
                    )
                )
            ).all()
            for job_id in sorted(job_ids):
                self._lock_job(connection, job_id)
                held = connection.execute(
                    sa.select(JOB.c.cancel_requested).where(
                        JOB.c.id == job_id,
                        JOB.c.state_id == JobState.RUNNING,
                        JOB.c.run_id == run_id,
                    )
                ).first()
                failed: dict[int, str] = dict.fromkeys(
                    connection.scalars(
                        sa.select(STEP.c.id).where(
                            STEP.c.job_id == job_id,
                            STEP.c.run_id == run_id,
                            STEP.c.state_id == JobState.RUNNING,
                        )
                    ).all(),
                    step_comment,
                )
                if held is not None and held.cancel_requested is not None:
                    not_started = connection.scalars(
                        sa.select(STEP.c.id).where(
                            STEP.c.job_id == job_id, STEP.c.state_id == JobState.CREATED
                        )
                    ).all()
                    failed.update(dict.fromkeys(not_started, "canceled"))
                if held is not None and op_failures:
                    created = connection.scalars(
                        sa.select(STEP.c.id).where(
                            STEP.c.job_id == job_id,
                            STEP.c.id.in_(list(op_failures)),
                            STEP.c.state_id == JobState.CREATED,
                        )
                    ).all()
                    for step_id in created:
                        failed[step_id] = bounded(op_failures[step_id])
                for step_id, comment in failed.items():
                    self._step_transition(
                        connection,
                        step_id,
                        (JobState.RUNNING, JobState.CREATED),
                        JobState.FAILED,
                        Actor.RECONCILER,
                        actor,
                        values={"finished": now, "comment": comment, "run_id": run_id},
                        comment=comment,
                        now=now,
                    )
                job_state, job_comment = None, None
                if held is not None:
                    job_state, job_comment = self._finalise_job(
                        connection,
                        job_id,
                        run_id,
                        Actor.RECONCILER,
                        actor,
                        now,
                        run_over=True,
                        reason=reason,
                    )
                results.extend(
                    StepResult(
                        step_id=step_id,
                        job_id=job_id,
                        state=JobState.FAILED,
                        job_state=job_state,
                        job_comment=job_comment,
                    )
                    for step_id in failed
                )
                if not failed and job_state is not None:
                    results.append(
                        StepResult(
                            step_id=0,
                            job_id=job_id,
                            state=JobState.FAILED,
                            job_state=job_state,
                            job_comment=job_comment,
                        )
                    )
        return results

    # --- internals ---------------------------------------------------------------------------

    def _finalise_job(
        self,
        connection: Connection,
        job_id: int,
        run_id: str | None,
        who: Actor,
        actor: str,
        now: datetime,
        *,
        run_over: bool = False,
        reason: str | None = None,
    ) -> tuple[JobState | None, str | None]:
        """Writes the final state of a job held by `run_id` once none of its steps is left to
        run, or, with `run_over`, once that run has ended. Needs the job row locked and held
        (`_lock_holder`, `_check_holder`) by the caller."""
        waiting = (JobState.RUNNING,) if run_over else (JobState.CREATED, JobState.RUNNING)
        of_job = STEP.c.job_id == job_id
        # Each branch is one lookup in ix_job_steps_job_id_state_id that stops at its first
        # row, so the question costs the same for the first step of a job as for its 10,000th.
        left_to_run: sa.Select[Any] | sa.CompoundSelect = sa.select(STEP.c.id).where(
            of_job, STEP.c.state_id.in_(waiting)
        )
        if not run_over and run_id:
            # A step that failed under an earlier run is re-run by the run now holding the job
            # (requeue, re-execution): it is not final until that run has re-run it. (A job
            # held with no run id has no run to wait for.)
            left_to_run = sa.union_all(
                left_to_run,
                sa.select(STEP.c.id).where(
                    of_job,
                    STEP.c.state_id == JobState.FAILED,
                    STEP.c.run_id.is_distinct_from(run_id),
                ),
            )
        left = connection.execute(left_to_run.limit(1)).first()
        if left is not None:
            return None, None
        counts = {
            JobState(state_id): count
            for state_id, count in connection.execute(
                sa.select(STEP.c.state_id, sa.func.count())
                .where(STEP.c.job_id == job_id)
                .group_by(STEP.c.state_id)
            )
        }
        cancel = connection.execute(
            sa.select(JOB.c.cancel_requested, JOB.c.cancel_requested_by).where(JOB.c.id == job_id)
        ).one()
        state, comment = job_outcome(counts)
        prefixes = [reason] if reason else []
        if cancel.cancel_requested is not None:
            prefixes.insert(0, f"canceled by {cancel.cancel_requested_by or 'frontend'}")
            state = JobState.FAILED
        if prefixes:
            comment = "; ".join([*prefixes, comment] if comment else prefixes)
        comment = bounded(comment)
        check_transitions(JOB_TRANSITIONS, (JobState.RUNNING,), state, who)
        changed = connection.execute(
            JOB.update()
            .where(
                JOB.c.id == job_id,
                JOB.c.state_id == JobState.RUNNING,
                JOB.c.run_id.is_not_distinct_from(run_id),
            )
            .values(
                state_id=state,
                comment=comment,
                finished=now,
                last_state_change=now,
                **_NO_CANCEL_REQUEST,
            )
        ).rowcount
        if not changed:  # pragma: no cover - the caller's lock and check make this a bug
            raise LostOwnership(f"job {job_id} changed hands while run {run_id} finalised it")
        self._record(connection, job_id, None, JobState.RUNNING, state, actor, comment, now)
        return state, comment

    def _transition(
        self,
        connection: Connection,
        job_id: int,
        expected: Sequence[JobState],
        target: JobState,
        who: Actor,
        actor: str,
        *,
        values: dict[str, Any] | None = None,
        comment: str | None = None,
        now: datetime | None = None,
    ) -> JobState:
        """Moves a job from one of `expected` to `target`; returns the state it was in."""
        check_transitions(JOB_TRANSITIONS, tuple(expected), target, who)
        now = now or utcnow()
        previous = self._lock_job(connection, job_id)
        if previous not in expected:
            raise InvalidTransition(
                f"job {job_id} is {previous.label}, expected {_labels(expected)}"
            )
        changed = connection.execute(
            JOB.update()
            .where(JOB.c.id == job_id, JOB.c.state_id == previous)
            .values(state_id=target, last_state_change=now, **(values or {}))
        ).rowcount
        if not changed:  # pragma: no cover - the row lock makes this a bug, not a race
            raise InvalidTransition(f"job {job_id} changed state concurrently")
        if previous != target:
            self._record(connection, job_id, None, previous, target, actor, comment, now)
        return previous

    def _step_transition(
        self,
        connection: Connection,
        step_id: int,
        expected: Sequence[JobState],
        target: JobState,
        who: Actor,
        actor: str,
        *,
        values: dict[str, Any],
        comment: str | None = None,
        now: datetime,
        run_id: str | object | None = ANY_RUN,
    ) -> None:
        """Moves a step from one of `expected` to `target`. A step Running moves only for the
        run it is Running in (`run_id`), unless the caller acts for any run (the reconciler,
        which has matched the run itself)."""
        check_transitions(STEP_TRANSITIONS, tuple(expected), target, who)
        # One guarded UPDATE per allowed source state, the usual one first: the history then
        # names the real source state without reading it beforehand.
        row = None
        for source in expected:
            guard = [STEP.c.id == step_id, STEP.c.state_id == source]
            if source == JobState.RUNNING and run_id is not ANY_RUN:
                guard.append(STEP.c.run_id.is_not_distinct_from(run_id))
            row = connection.execute(
                STEP.update()
                .where(*guard)
                .values(state_id=target, last_state_change=now, **values)
                .returning(STEP.c.job_id)
            ).first()
            if row is not None:
                break
        if row is None:
            current = connection.execute(
                sa.select(STEP.c.state_id, STEP.c.run_id).where(STEP.c.id == step_id)
            ).first()
            if current is None:
                raise NotFound(f"step {step_id} does not exist")
            current_state = JobState(current.state_id)
            if current_state == JobState.RUNNING and current_state in expected:
                raise LostOwnership(
                    f"step {step_id} is Running in run {current.run_id}, not in run {run_id}"
                )
            raise InvalidTransition(
                f"step {step_id} is {current_state.label}, expected {_labels(expected)}"
            )
        self._record(connection, row.job_id, step_id, source, target, actor, comment, now)

    def _reset_steps(
        self,
        connection: Connection,
        job_id: int,
        states: Sequence[JobState],
        who: Actor,
        actor: str,
        now: datetime,
    ) -> None:
        check_transitions(STEP_TRANSITIONS, tuple(states), JobState.CREATED, who)
        step_rows = connection.execute(
            sa.select(STEP.c.id, STEP.c.state_id).where(
                STEP.c.job_id == job_id, STEP.c.state_id.in_(states)
            )
        ).all()
        if not step_rows:
            return
        connection.execute(
            STEP.update()
            .where(STEP.c.id.in_([row.id for row in step_rows]))
            .values(state_id=JobState.CREATED, comment=None, last_state_change=now)
        )
        connection.execute(
            HISTORY.insert(),
            [
                {
                    "job_id": job_id,
                    "step_id": row.id,
                    "from_state_id": row.state_id,
                    "to_state_id": JobState.CREATED,
                    "actor": actor,
                    "comment": "recompute",
                    "changed_at": now,
                }
                for row in step_rows
            ],
        )

    def _lock_job(self, connection: Connection, job_id: int) -> JobState:
        """Locks the job row until the transaction ends (SQLite: the whole database already is)
        and returns its state."""
        state_id = connection.execute(
            sa.select(JOB.c.state_id).where(JOB.c.id == job_id).with_for_update()
        ).scalar()
        if state_id is None:
            raise NotFound(f"job {job_id} does not exist")
        return JobState(state_id)

    def _lock_holder(self, connection: Connection, job_id: int) -> Any:
        """Locks the job row and reads its state and holder, in one statement."""
        row = connection.execute(
            sa.select(*_HOLDER_COLUMNS).where(JOB.c.id == job_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        return row

    def _lock_holder_of_step(self, connection: Connection, step_id: int) -> Any:
        """`_lock_holder` of the step's job: every step write of a run starts here."""
        row = connection.execute(
            sa.select(*_HOLDER_COLUMNS)
            .join_from(JOB, STEP, STEP.c.job_id == JOB.c.id)
            .where(STEP.c.id == step_id)
            .with_for_update(of=JOB)
        ).first()
        if row is None:
            raise NotFound(f"step {step_id} does not exist")
        return row

    def _record(
        self,
        connection: Connection,
        job_id: int,
        step_id: int | None,
        from_state: JobState | None,
        to_state: JobState,
        actor: str,
        comment: str | None,
        now: datetime,
    ) -> None:
        connection.execute(
            HISTORY.insert().values(
                job_id=job_id,
                step_id=step_id,
                from_state_id=from_state,
                to_state_id=to_state,
                actor=actor[:200],
                comment=bounded(comment),
                changed_at=now,
            )
        )


_HOLDER_COLUMNS = (
    JOB.c.id,
    JOB.c.state_id,
    JOB.c.run_id,
    JOB.c.cancel_requested,
    JOB.c.cancel_requested_by,
)


def _check_holder(holder: Any, run_id: str | None) -> None:
    """The fence of every write a run makes: the job (a `_lock_holder` row) must be Running and
    held by `run_id`; `LostOwnership` names both runs otherwise."""
    if holder.state_id != JobState.RUNNING or holder.run_id != run_id:
        held = f"held by run {holder.run_id}" if holder.run_id else "held by no run"
        state = JobState(holder.state_id).label
        raise LostOwnership(
            f"job {holder.id} is {state} and {held}: run {run_id} no longer holds it"
        )


def _check_queue_count(connection: Connection, job_id: int, queue_count: int) -> None:
    """The fence of a decision taken about one queueing of a job (its run ended unclaimed, say):
    the job row, locked, must still be in that queueing."""
    current = connection.execute(
        sa.select(JOB.c.queue_count).where(JOB.c.id == job_id).with_for_update()
    ).scalar()
    if current is None:
        raise NotFound(f"job {job_id} does not exist")
    if current != queue_count:
        raise InvalidTransition(
            f"job {job_id} was queued again (queueing {current}, not {queue_count}): left alone"
        )


def _run_actor(run_id: str | None) -> str:
    return f"run:{run_id}" if run_id else "standalone"


def validate_against_schema(type_name: str, schema: dict[str, Any], parameters: Any) -> None:
    """Raises `InvalidParameters` naming the offending field."""
    import jsonschema  # here: commands that only read the queue need not load it

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(parameters))
    if error is None:
        return
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    ).lstrip(".")
    location = f"parameter '{where}': " if where else ""
    # jsonschema quotes the offending value, which may be megabytes of a frontend's JSON.
    message = bounded(error.message, 300)
    raise InvalidParameters(f"invalid parameters for {type_name!r}: {location}{message}")
