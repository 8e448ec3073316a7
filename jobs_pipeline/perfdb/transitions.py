"""The core of the job queue: guarded moves of jobs and steps, row locks, the holder fence
and the history they write. The other parts of the queue build on `TransitionCore`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.clock import database_now
from jobs_pipeline.perfdb.errors import InvalidTransition, LostOwnership, NotFound
from jobs_pipeline.perfdb.queue_rows import (
    ANY_RUN,
    HISTORY,
    HOLDER_COLUMNS,
    JOB,
    NO_CANCEL_REQUEST,
    SELECT_JOBS,
    SELECT_STEPS,
    STEP,
    TYPES,
    actor_label,
    bounded,
    dependencies_by_step,
    job_from_row,
    job_outcome,
    state_labels,
    step_from_row,
)
from jobs_pipeline.perfdb.records import Job, Step
from jobs_pipeline.perfdb.states import (
    JOB_TRANSITIONS,
    STEP_TRANSITIONS,
    Actor,
    JobState,
    check_transitions,
)


class TransitionCore:
    """Guarded moves of one job or step, the locks they take and the history they write."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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

    def _get_job(self, connection: Connection, job_id: int) -> Job:
        row = connection.execute(SELECT_JOBS.where(JOB.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        return job_from_row(row)

    def _get_steps(self, connection: Connection, job_id: int) -> list[Step]:
        query = SELECT_STEPS.where(STEP.c.job_id == job_id).order_by(STEP.c.position)
        rows = connection.execute(query).all()
        depends_on = dependencies_by_step(connection, STEP.c.job_id == job_id)
        return [step_from_row(row, depends_on) for row in rows]

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
    ) -> JobState:
        """Moves a job from one of `expected` to `target`; returns the state it was in. The
        triggers write the history row (its comment is the job's new `comment`) and the
        timestamps."""
        check_transitions(JOB_TRANSITIONS, tuple(expected), target, who)
        previous = self._lock_job(connection, job_id)
        if previous not in expected:
            raise InvalidTransition(
                f"job {job_id} is {previous.label}, expected {state_labels(expected)}"
            )
        changed = connection.execute(
            JOB.update()
            .where(JOB.c.id == job_id, JOB.c.state_id == previous)
            .values(state_id=target, actor=actor_label(who, actor), **(values or {}))
        ).rowcount
        if not changed:  # pragma: no cover - the row lock makes this a bug, not a race
            raise InvalidTransition(f"job {job_id} changed state concurrently")
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
        run_id: str | object | None = ANY_RUN,
    ) -> None:
        """Moves a step from one of `expected` to `target`. A step Running moves only for the
        run it is Running in (`run_id`), unless the caller acts for any run (the reconciler,
        which has matched the run itself)."""
        check_transitions(STEP_TRANSITIONS, tuple(expected), target, who)
        # One guarded UPDATE per allowed source state, the usual one first.
        row = None
        label = actor_label(who, actor)
        for source in expected:
            guard = [STEP.c.id == step_id, STEP.c.state_id == source]
            if source == JobState.RUNNING and run_id is not ANY_RUN:
                guard.append(STEP.c.run_id.is_not_distinct_from(run_id))
            row = connection.execute(
                STEP.update()
                .where(*guard)
                .values(state_id=target, actor=label, **values)
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
                f"step {step_id} is {current_state.label}, expected {state_labels(expected)}"
            )

    def _reset_steps(
        self,
        connection: Connection,
        job_id: int,
        states: Sequence[JobState],
        who: Actor,
        actor: str,
    ) -> None:
        """Puts steps back to Created (recompute); the triggers write a history row each."""
        check_transitions(STEP_TRANSITIONS, tuple(states), JobState.CREATED, who)
        connection.execute(
            STEP.update()
            .where(STEP.c.job_id == job_id, STEP.c.state_id.in_(states))
            .values(state_id=JobState.CREATED, comment=None, actor=actor_label(who, actor))
        )

    def _finalise_job(
        self,
        connection: Connection,
        job_id: int,
        run_id: str | None,
        who: Actor,
        actor: str,
        *,
        run_ended: bool = False,
        reason: str | None = None,
    ) -> tuple[JobState | None, str | None]:
        """Writes the final state of a job held by `run_id` once none of its steps is left to
        run, or, with `run_ended`, once that run has ended. Needs the job row locked and held
        (`_lock_holder`, `check_holder`) by the caller."""
        waiting = (JobState.RUNNING,) if run_ended else (JobState.CREATED, JobState.RUNNING)
        of_job = STEP.c.job_id == job_id
        # Each branch is one lookup in ix_job_steps_job_id_state_id that stops at its first
        # row, so the question costs the same for the first step of a job as for its 10,000th.
        left_to_run: sa.Select[Any] | sa.CompoundSelect = sa.select(STEP.c.id).where(
            of_job, STEP.c.state_id.in_(waiting)
        )
        if not run_ended and run_id:
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
                actor=actor_label(who, actor),
                **NO_CANCEL_REQUEST,
            )
        ).rowcount
        if not changed:  # pragma: no cover - the caller's lock and check make this a bug
            raise LostOwnership(f"job {job_id} changed hands while run {run_id} finalised it")
        return state, comment

    def _fail(
        self,
        connection: Connection,
        job_id: int,
        from_states: Sequence[JobState],
        who: Actor,
        actor: str,
        comment: str,
    ) -> None:
        """A job that ends Failed without its steps being run (again): refused, canceled."""
        self._transition(
            connection,
            job_id,
            from_states,
            JobState.FAILED,
            who,
            actor,
            values={"comment": comment, **NO_CANCEL_REQUEST},
        )

    def _request_cancel(self, connection: Connection, job_id: int, who: str) -> None:
        """A frontend's cancel request, as its plain SQL would write it: the triggers stamp it
        with the database clock and write the history row."""
        connection.execute(
            JOB.update()
            .where(JOB.c.id == job_id, JOB.c.cancel_requested.is_(None))
            .values(
                cancel_requested=database_now(),
                cancel_requested_by=who[:200],
                actor=actor_label(Actor.USER, who),
            )
        )

    def _fail_canceled(
        self,
        connection: Connection,
        job_id: int,
        state: JobState,
        who: Actor,
        requested_by: str,
        actor: str,
    ) -> None:
        self._fail(connection, job_id, (state,), who, actor, bounded(f"canceled by {requested_by}"))

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
            sa.select(*HOLDER_COLUMNS).where(JOB.c.id == job_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"job {job_id} does not exist")
        return row

    def _lock_holder_of_step(self, connection: Connection, step_id: int) -> Any:
        """`_lock_holder` of the step's job: every step write of a run starts here."""
        row = connection.execute(
            sa.select(*HOLDER_COLUMNS)
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
    ) -> None:
        """A note in the history that is not a state change (the triggers write those)."""
        connection.execute(
            HISTORY.insert().values(
                job_id=job_id,
                step_id=step_id,
                from_state_id=from_state,
                to_state_id=to_state,
                actor=actor[:200],
                comment=bounded(comment),
                changed_at=database_now(),
            )
        )
