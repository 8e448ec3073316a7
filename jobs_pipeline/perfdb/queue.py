"""The job queue: every query and every state transition of jobs and steps.

Each transition is one guarded UPDATE (`... WHERE state IN <expected>`); when it changes no row,
the current state is read back and reported in an `InvalidTransition` (or `NotFound`). Each
transition also writes a `job_state_history` row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import jsonschema
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import (
    InputError,
    InvalidParameters,
    InvalidTransition,
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
from jobs_pipeline.perfdb.states import QUEUEABLE_STATES, JobState

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

    def validate_parameters(self, type_name: str, parameters: Any) -> None:
        """Checks parameters against the type's JSON Schema; the error names the field."""
        with begin(self.engine) as connection:
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
        with begin(self.engine) as connection:
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
        with begin(self.engine) as connection:
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
                connection, job_id, (JobState.CREATED,), JobState.CREATED, actor, values=values
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
            actor,
            values={"queue_count": JOB.c.queue_count + 1, "comment": None, "finished": None},
            now=now,
        )
        if previous == JobState.FINISHED:
            self._reset_steps(connection, job_id, (JobState.FINISHED,), actor, now)

    def claim_job(
        self,
        job_id: int,
        run_id: str | None,
        *,
        from_states: Sequence[JobState] = (JobState.QUEUED,),
        actor: str | None = None,
    ) -> Job:
        """Queued -> Running for the run that will execute the job. Atomic: of several runs
        racing for the same job exactly one wins, the others get `InvalidTransition`."""
        now = utcnow()
        with begin(self.engine) as connection:
            self._transition(
                connection,
                job_id,
                from_states,
                JobState.RUNNING,
                actor or _run_actor(run_id),
                values={"run_id": run_id, "started": now, "finished": None, "comment": None},
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
                actor,
                values={"run_id": run_id, "finished": None, "comment": None},
                now=now,
            )
            if previous == JobState.FINISHED:
                self._reset_steps(connection, job_id, (JobState.FINISHED,), actor, now)
            return self._get_job(connection, job_id)

    def fail_job(
        self,
        job_id: int,
        comment: str,
        *,
        from_states: Sequence[JobState] = (JobState.QUEUED,),
        actor: str = DEFAULT_ACTOR,
    ) -> Job:
        """Marks a job Failed without running it, e.g. a queued row with bad parameters."""
        now = utcnow()
        with begin(self.engine) as connection:
            self._transition(
                connection,
                job_id,
                from_states,
                JobState.FAILED,
                actor,
                values={"comment": comment, "finished": now},
                comment=comment,
                now=now,
            )
            return self._get_job(connection, job_id)

    def finalise_job(
        self, job_id: int, *, run_id: str | None = None, actor: str = DEFAULT_ACTOR
    ) -> Job:
        """Writes a Running job's final state if none of its steps is left to run (a no-op
        otherwise; the last `finish_step` normally does this already). With `run_id`, the run
        that holds the job is over: steps it did not run count as they are."""
        with begin(self.engine) as connection:
            if self._lock_job(connection, job_id) == JobState.RUNNING:
                self._finalise_job(connection, job_id, actor, utcnow(), run_id=run_id)
            return self._get_job(connection, job_id)

    def history(self, job_id: int) -> list[HistoryEntry]:
        query = sa.select(HISTORY).where(HISTORY.c.job_id == job_id).order_by(HISTORY.c.id)
        with begin(self.engine) as connection:
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
        with begin(self.engine) as connection:
            return self._get_steps(connection, job_id)

    def _get_steps(self, connection: Connection, job_id: int) -> list[Step]:
        query = _SELECT_STEPS.where(STEP.c.job_id == job_id).order_by(STEP.c.position)
        return [_step(row) for row in connection.execute(query)]

    def get_step(self, step_id: int) -> Step:
        with begin(self.engine) as connection:
            row = connection.execute(_SELECT_STEPS.where(STEP.c.id == step_id)).first()
        if row is None:
            raise NotFound(f"step {step_id} does not exist")
        return _step(row)

    def start_step(self, step_id: int, run_id: str | None, *, actor: str | None = None) -> Step:
        """Created or Failed -> Running (a failed step may be re-run)."""
        now = utcnow()
        with begin(self.engine) as connection:
            self._step_transition(
                connection,
                step_id,
                (JobState.CREATED, JobState.FAILED),
                JobState.RUNNING,
                actor or _run_actor(run_id),
                values={
                    "run_id": run_id,
                    "started": now,
                    "finished": None,
                    "comment": None,
                    "attempts": STEP.c.attempts + 1,
                },
                now=now,
            )
            row = connection.execute(_SELECT_STEPS.where(STEP.c.id == step_id)).one()
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
        """Running -> Finished, or Failed with `error` as its comment. A Finished step's
        comment is `note`; `details` (JSON) is stored either way, and `write` stores the step's
        results in this same transaction. When no step of the job is left to run, the job's
        final state is written in this same transaction too."""
        now = utcnow()
        state = JobState.FINISHED if error is None else JobState.FAILED
        actor = actor or _run_actor(run_id)
        with begin(self.engine) as connection:
            job_id = self._lock_job_of_step(connection, step_id)
            self._step_transition(
                connection,
                step_id,
                (JobState.RUNNING,),
                state,
                actor,
                values={"finished": now, "comment": error or note, "details": details},
                comment=error or note,
                now=now,
            )
            if write is not None and error is None:
                write(connection)
            job_state, job_comment = self._finalise_job(connection, job_id, actor, now)
            return StepResult(
                step_id=step_id,
                job_id=job_id,
                state=state,
                job_state=job_state,
                job_comment=job_comment,
            )

    def fail_running_steps_of_run(
        self, run_id: str, reason: str, *, actor: str | None = None
    ) -> list[StepResult]:
        """Reconciles a run that died: its steps still Running become Failed with `reason`, and
        its job, if still Running for this run, is finalised. Steps and jobs that a newer run
        has taken over are left alone, so a late call is harmless and a repeated one changes
        nothing."""
        now = utcnow()
        actor = actor or _run_actor(run_id)
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
                step_ids = connection.scalars(
                    sa.select(STEP.c.id).where(
                        STEP.c.job_id == job_id,
                        STEP.c.run_id == run_id,
                        STEP.c.state_id == JobState.RUNNING,
                    )
                ).all()
                for step_id in step_ids:
                    self._step_transition(
                        connection,
                        step_id,
                        (JobState.RUNNING,),
                        JobState.FAILED,
                        actor,
                        values={"finished": now, "comment": reason},
                        comment=reason,
                        now=now,
                    )
                job_state, job_comment = self._finalise_job(
                    connection, job_id, actor, now, run_id=run_id, reason=reason
                )
                results.extend(
                    StepResult(
                        step_id=step_id,
                        job_id=job_id,
                        state=JobState.FAILED,
                        job_state=job_state,
                        job_comment=job_comment,
                    )
                    for step_id in step_ids
                )
                if not step_ids and job_state is not None:
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
        actor: str,
        now: datetime,
        *,
        run_id: str | None = None,
        reason: str | None = None,
    ) -> tuple[JobState | None, str | None]:
        """Writes the job's final state once none of its steps is left to run (or, with
        `run_id`, once that run is over). Needs the job row locked by the caller."""
        unfinished = (
            (JobState.RUNNING,) if run_id is not None else (JobState.CREATED, JobState.RUNNING)
        )
        left_to_run: sa.ColumnElement[bool] = STEP.c.state_id.in_(unfinished)
        if run_id is None:
            # A step that failed under an earlier run is re-run by the run now holding the job
            # (requeue, re-execution): it is not final until that run has re-run it. (A job
            # held with no run id has no run to wait for.)
            holder = sa.select(JOB.c.run_id).where(JOB.c.id == job_id).scalar_subquery()
            left_to_run = sa.or_(
                left_to_run,
                sa.and_(
                    STEP.c.state_id == JobState.FAILED,
                    sa.func.coalesce(holder, "") != "",
                    STEP.c.run_id.is_distinct_from(holder),
                ),
            )
        # Cheap check first: all but the last step of a job stop here without counting.
        left = connection.execute(
            sa.select(STEP.c.id).where(STEP.c.job_id == job_id, left_to_run).limit(1)
        ).first()
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
        total = sum(counts.values())
        failed = total - counts.get(JobState.FINISHED, 0)
        if total and not failed:
            state, comment = JobState.FINISHED, None
        elif total:
            state, comment = JobState.FAILED, failed_steps_comment(failed, total)
        else:
            state, comment = JobState.FAILED, "no steps were created"
        if reason is not None:
            comment = f"{reason}; {comment}" if comment else reason
        guard = [JOB.c.id == job_id, JOB.c.state_id == JobState.RUNNING]
        if run_id is not None:
            guard.append(JOB.c.run_id == run_id)
        changed = connection.execute(
            JOB.update()
            .where(*guard)
            .values(state_id=state, comment=comment, finished=now, last_state_change=now)
        ).rowcount
        if not changed:
            return None, None
        self._record(connection, job_id, None, JobState.RUNNING, state, actor, comment, now)
        return state, comment

    def _transition(
        self,
        connection: Connection,
        job_id: int,
        expected: Sequence[JobState],
        target: JobState,
        actor: str,
        *,
        values: dict[str, Any] | None = None,
        comment: str | None = None,
        now: datetime | None = None,
    ) -> JobState:
        """Moves a job from one of `expected` to `target`; returns the state it was in."""
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
        actor: str,
        *,
        values: dict[str, Any],
        comment: str | None = None,
        now: datetime,
    ) -> None:
        # One guarded UPDATE per allowed source state, the usual one first: the history then
        # names the real source state without reading it beforehand.
        row = None
        for source in expected:
            row = connection.execute(
                STEP.update()
                .where(STEP.c.id == step_id, STEP.c.state_id == source)
                .values(state_id=target, last_state_change=now, **values)
                .returning(STEP.c.job_id)
            ).first()
            if row is not None:
                break
        if row is None:
            current = connection.execute(
                sa.select(STEP.c.state_id).where(STEP.c.id == step_id)
            ).scalar()
            if current is None:
                raise NotFound(f"step {step_id} does not exist")
            raise InvalidTransition(
                f"step {step_id} is {JobState(current).label}, expected {_labels(expected)}"
            )
        self._record(connection, row.job_id, step_id, source, target, actor, comment, now)

    def _reset_steps(
        self,
        connection: Connection,
        job_id: int,
        states: Sequence[JobState],
        actor: str,
        now: datetime,
    ) -> None:
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

    def _lock_job_of_step(self, connection: Connection, step_id: int) -> int:
        job_id = connection.execute(
            sa.select(JOB.c.id)
            .join_from(JOB, STEP, STEP.c.job_id == JOB.c.id)
            .where(STEP.c.id == step_id)
            .with_for_update(of=JOB)
        ).scalar()
        if job_id is None:
            raise NotFound(f"step {step_id} does not exist")
        return job_id

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
                actor=actor,
                comment=comment,
                changed_at=now,
            )
        )


def _run_actor(run_id: str | None) -> str:
    return f"run:{run_id}" if run_id else "standalone"


def validate_against_schema(type_name: str, schema: dict[str, Any], parameters: Any) -> None:
    """Raises `InvalidParameters` naming the offending field."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(parameters))
    if error is None:
        return
    where = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    ).lstrip(".")
    location = f"parameter '{where}': " if where else ""
    raise InvalidParameters(f"invalid parameters for {type_name!r}: {location}{error.message}")
