"""What the run holding a job writes: claim, reopen, steps created, started and finished,
the job finalised."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import JobCanceled
from jobs_pipeline.perfdb.queue_rows import (
    DEFAULT_ACTOR,
    NO_CANCEL_REQUEST,
    STEP,
    actor_label,
    bounded,
    check_holder,
    run_actor,
)
from jobs_pipeline.perfdb.records import Job, NewStep, Step, StepResult
from jobs_pipeline.perfdb.states import STEP_TRANSITIONS, Actor, JobState, check_transitions
from jobs_pipeline.perfdb.step_dependencies import (
    CANCELED_NOT_RUN,
    StepDependencies,
    check_dependency_positions,
    insert_dependencies,
    read_started_step,
)


class RunMoves(StepDependencies):
    """Moves of the run that holds a job (`Actor.RUN`), each fenced by its run id."""

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
        with begin(self.engine) as connection:
            self._transition(
                connection,
                job_id,
                from_states,
                JobState.RUNNING,
                Actor.RUN,
                actor or run_actor(run_id),
                # The database stamps started, heartbeat and finished.
                values={"run_id": run_id, "comment": None},
            )
            return self._get_job(connection, job_id)

    def reopen_job(self, job_id: int, run_id: str, *, actor: str | None = None) -> Job:
        """Failed or Finished -> Running for a re-execution started from the Dagster UI.
        Reopening a Finished job puts all its steps back to Created (recompute all)."""
        actor = actor or f"run:{run_id}"
        with begin(self.engine) as connection:
            previous = self._transition(
                connection,
                job_id,
                (JobState.FAILED, JobState.FINISHED),
                JobState.RUNNING,
                Actor.RUN,
                actor,
                values={"run_id": run_id, "comment": None, **NO_CANCEL_REQUEST},
            )
            if previous == JobState.FINISHED:
                self._reset_steps(connection, job_id, (JobState.FINISHED,), Actor.RUN, actor)
            return self._get_job(connection, job_id)

    def finalise_job(
        self,
        job_id: int,
        *,
        run_id: str | None = None,
        run_ended: bool = False,
        actor: str = DEFAULT_ACTOR,
    ) -> Job:
        """Writes the final state of a Running job that `run_id` holds once none of its steps is
        left to run (a no-op otherwise; the last `finish_step` normally does this already).
        With `run_ended`, the run has ended: steps it did not run count as they are. A job held
        by another run raises `LostOwnership`; a job already final is returned as it is."""
        with begin(self.engine) as connection:
            holder = self._lock_holder(connection, job_id)
            if holder.state_id == JobState.RUNNING:
                check_holder(holder, run_id)
                self._finalise_job(
                    connection, job_id, run_id, Actor.RUN, actor, run_ended=run_ended
                )
            return self._get_job(connection, job_id)

    def create_steps(
        self, job_id: int, steps: Sequence[NewStep], *, actor: str = DEFAULT_ACTOR
    ) -> list[Step]:
        """Creates a job's steps once; a job that already has steps keeps them. The database
        stamps them and writes their history rows. A step's `depends_on` names positions before
        its own (`ValueError` otherwise)."""
        check_dependency_positions(steps)
        label = actor_label(Actor.RUN, actor)
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
                            "attempts": 0,
                            "actor": label,
                        }
                        for position, step in enumerate(steps)
                    ],
                )
                step_ids = connection.scalars(
                    sa.select(STEP.c.id).where(STEP.c.job_id == job_id).order_by(STEP.c.position)
                ).all()
                insert_dependencies(connection, steps, step_ids)
            return self._get_steps(connection, job_id)

    def start_step(self, step_id: int, run_id: str | None, *, actor: str | None = None) -> Step:
        """Created or Failed -> Running (a failed step may be re-run), for the run holding the
        job; that run may also restart its own Running step (a retry, a redelivered task). A
        job with a cancel request starts no more steps: this step and every other one the run
        has not started fail at once with `canceled, not run` (attempts unchanged), the job is
        finalised, and `JobCanceled` is raised; the run's later step starts raise it too,
        writing nothing."""
        actor = actor or run_actor(run_id)
        with begin(self.engine) as connection:
            holder = self._lock_holder_of_step(connection, step_id)
            job_id = holder.id
            canceled = None
            unusual = holder.state_id != JobState.RUNNING or holder.run_id != run_id
            # Read only off the usual path: a step start stays three statements.
            if (unusual or holder.cancel_requested is not None) and _failed_by_cancel(
                connection, step_id, run_id
            ):
                canceled = JobCanceled(f"job {job_id} was canceled: step {step_id} not run")
            else:
                check_holder(holder, run_id)
            if canceled is None and holder.cancel_requested is not None:
                reason = f"canceled by {holder.cancel_requested_by or 'frontend'}"
                not_run = self._fail_for_cancel(connection, job_id, step_id, run_id, actor)
                self._finalise_job(connection, job_id, run_id, Actor.RUN, actor)
                # The failed steps must be committed before the op hears of the cancel.
                canceled = JobCanceled(
                    f"job {job_id} was {reason}: {plural_steps(len(not_run))} not run",
                    not_run=tuple(not_run),
                )
            elif canceled is None:
                self._step_transition(
                    connection,
                    step_id,
                    (JobState.CREATED, JobState.FAILED, JobState.RUNNING),
                    JobState.RUNNING,
                    Actor.RUN,
                    actor,
                    values={"run_id": run_id, "comment": None, "attempts": STEP.c.attempts + 1},
                    run_id=run_id,
                )
                # Checked after the move, in the read-back: a step start stays three statements.
                step = read_started_step(connection, step_id)
        if canceled is not None:
            raise canceled
        return step

    def _fail_for_cancel(
        self, connection: Connection, job_id: int, step_id: int, run_id: str | None, actor: str
    ) -> list[int]:
        """Fails every step of the job that this run has not started (Created, or Failed under
        an earlier run) with `canceled, not run`, in a few statements however many there are;
        `step_id`, if this run had started it already (a retry), with `canceled`. Returns the
        steps failed without running, in position order."""
        label = actor_label(Actor.RUN, actor)
        for source in (JobState.CREATED, JobState.FAILED):
            check_transitions(STEP_TRANSITIONS, (source,), JobState.FAILED, Actor.RUN)
        not_started = sa.or_(
            STEP.c.state_id == JobState.CREATED,
            sa.and_(STEP.c.state_id == JobState.FAILED, STEP.c.run_id.is_distinct_from(run_id)),
        )
        not_run = connection.scalars(
            sa.select(STEP.c.id)
            .where(STEP.c.job_id == job_id, not_started)
            .order_by(STEP.c.position)
        ).all()
        if not_run:
            connection.execute(
                STEP.update()
                .where(STEP.c.job_id == job_id, not_started)
                .values(
                    state_id=JobState.FAILED,
                    comment=CANCELED_NOT_RUN,
                    run_id=run_id,
                    actor=label,
                )
            )
        if step_id not in not_run:
            self._step_transition(
                connection,
                step_id,
                (JobState.RUNNING,),
                JobState.FAILED,
                Actor.RUN,
                actor,
                values={"comment": "canceled"},
                run_id=run_id,
            )
        return list(not_run)

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
        written in this same transaction too. A failed step fails the steps that depend on it,
        without running them, in this same transaction (`StepResult.not_run`)."""
        state = JobState.FINISHED if error is None else JobState.FAILED
        actor = actor or run_actor(run_id)
        comment = bounded(error or note)
        with begin(self.engine) as connection:
            holder = self._lock_holder_of_step(connection, step_id)
            job_id = holder.id
            check_holder(holder, run_id)
            self._step_transition(
                connection,
                step_id,
                (JobState.RUNNING,),
                state,
                Actor.RUN,
                actor,
                values={"comment": comment, "details": details},
                run_id=run_id,
            )
            if write is not None and error is None:
                write(connection)
            not_run: list[int] = []
            if error is not None:
                not_run = self._fail_dependents(connection, step_id, run_id, actor)
            job_state, job_comment = self._finalise_job(
                connection, job_id, run_id, Actor.RUN, actor
            )
            return StepResult(
                step_id=step_id,
                job_id=job_id,
                state=state,
                job_state=job_state,
                job_comment=job_comment,
                not_run=tuple(not_run),
            )


def plural_steps(count: int) -> str:
    return f"{count} step" if count == 1 else f"{count} steps"


def _failed_by_cancel(connection: Connection, step_id: int, run_id: str | None) -> bool:
    """Whether an earlier step start of this run saw the job's cancel and failed this step."""
    row = connection.execute(
        sa.select(STEP.c.state_id, STEP.c.run_id, STEP.c.comment).where(STEP.c.id == step_id)
    ).one()
    return (
        row.state_id == JobState.FAILED
        and run_id is not None
        and row.run_id == run_id
        and row.comment == CANCELED_NOT_RUN
    )
