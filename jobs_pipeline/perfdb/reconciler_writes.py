"""What the reconciler and the queue sensor write for runs that ended, died or were never
launched: failed steps, finalised or refused jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, InvalidTransition, NotFound
from jobs_pipeline.perfdb.queue_rows import (
    DEFAULT_ACTOR,
    JOB,
    STEP,
    bounded,
    check_holder,
)
from jobs_pipeline.perfdb.records import Job, StepResult
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline.perfdb.step_dependencies import CANCELED_NOT_RUN
from jobs_pipeline.perfdb.transitions import TransitionCore


class ReconcilerWrites(TransitionCore):
    """Moves made for runs that cannot make them: ended, dead, or never launched."""

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
        comment = bounded(comment)
        with begin(self.engine) as connection:
            if JobState.RUNNING in from_states:
                check_holder(self._lock_holder(connection, job_id), run_id)
            if queue_count is not None:
                _check_queue_count(connection, job_id, queue_count)
            self._fail(connection, job_id, from_states, who, actor, comment)
            return self._get_job(connection, job_id)

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
        steps that never started, with `canceled, not run`. Steps and jobs that a newer run has
        taken over are left alone, so a late call is harmless and a repeated one changes
        nothing."""
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
                failed = self._steps_to_fail(
                    connection,
                    job_id,
                    run_id,
                    step_comment,
                    canceled=held is not None and held.cancel_requested is not None,
                    op_failures=op_failures if held is not None else None,
                )
                for step_id, comment in failed.items():
                    self._step_transition(
                        connection,
                        step_id,
                        (JobState.RUNNING, JobState.CREATED),
                        JobState.FAILED,
                        Actor.RECONCILER,
                        actor,
                        values={"comment": comment, "run_id": run_id},
                    )
                job_state, job_comment = None, None
                if held is not None:
                    job_state, job_comment = self._finalise_job(
                        connection,
                        job_id,
                        run_id,
                        Actor.RECONCILER,
                        actor,
                        run_ended=True,
                        reason=reason,
                    )
                results.extend(_results(job_id, failed, job_state, job_comment))
        return results

    def _steps_to_fail(
        self,
        connection: sa.Connection,
        job_id: int,
        run_id: str,
        step_comment: str,
        *,
        canceled: bool,
        op_failures: Mapping[int, str] | None,
    ) -> dict[int, str]:
        """The job's steps the reconciler fails, with their comments: those `run_id` left
        Running; those never started when the job has a cancel request; those whose op failed
        before they started."""
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
        if canceled:
            not_started = connection.scalars(
                sa.select(STEP.c.id).where(
                    STEP.c.job_id == job_id, STEP.c.state_id == JobState.CREATED
                )
            ).all()
            failed.update(dict.fromkeys(not_started, CANCELED_NOT_RUN))
        if op_failures:
            created = connection.scalars(
                sa.select(STEP.c.id).where(
                    STEP.c.job_id == job_id,
                    STEP.c.id.in_(list(op_failures)),
                    STEP.c.state_id == JobState.CREATED,
                )
            ).all()
            for step_id in created:
                failed[step_id] = bounded(op_failures[step_id])
        return failed

    def fail_steps_of_older_runs(
        self, job_ids: Sequence[int], *, actor: str | None = None
    ) -> list[StepResult]:
        """Steps still Running under a run that no longer holds their job (the job was moved
        on by hand, or is held by a newer run): no run will ever finish them, and the job could
        never be finalised while they stay Running. They become Failed with a comment that
        names both runs. One indexed lookup per job."""
        actor = actor or "reconciler"
        if not job_ids:
            return []
        stale = (
            sa.select(STEP.c.id, STEP.c.job_id, STEP.c.run_id)
            .join_from(STEP, JOB, STEP.c.job_id == JOB.c.id)
            .where(
                STEP.c.job_id.in_(list(job_ids)),
                STEP.c.state_id == JobState.RUNNING,
                sa.or_(
                    JOB.c.state_id != JobState.RUNNING,
                    STEP.c.run_id.is_distinct_from(JOB.c.run_id),
                ),
            )
            .order_by(STEP.c.job_id, STEP.c.id)
        )
        results: list[StepResult] = []
        with begin(self.engine) as connection:
            for row in connection.execute(stale).all():
                holder = self._lock_holder(connection, row.job_id)
                state = JobState(holder.state_id)
                now_held = f"run {holder.run_id}" if holder.run_id else "no run"
                comment = bounded(
                    f"left Running by run {row.run_id or '(none)'}, which no longer holds job "
                    f"{row.job_id} ({state.label}, held by {now_held})"
                )
                try:
                    self._step_transition(
                        connection,
                        row.id,
                        (JobState.RUNNING,),
                        JobState.FAILED,
                        Actor.RECONCILER,
                        actor,
                        values={"comment": comment},
                        run_id=row.run_id,
                    )
                except InputError:
                    continue  # moved meanwhile: nothing stale left
                results.append(StepResult(step_id=row.id, job_id=row.job_id, state=JobState.FAILED))
        return results

    def fail_running_job_without_run(
        self, job_id: int, reason: str, *, actor: str | None = None
    ) -> StepResult | None:
        """A Running job that no run holds (its run id is empty, written by hand): no run will
        ever finish or finalise it. Its Running steps fail with `reason` and the job is
        finalised with it. Nothing happens if a run has claimed it meanwhile."""
        actor = actor or "reconciler"
        reason = bounded(reason)
        with begin(self.engine) as connection:
            holder = self._lock_holder(connection, job_id)
            if holder.state_id != JobState.RUNNING or holder.run_id is not None:
                return None
            running = connection.scalars(
                sa.select(STEP.c.id).where(
                    STEP.c.job_id == job_id, STEP.c.state_id == JobState.RUNNING
                )
            ).all()
            for step_id in running:
                self._step_transition(
                    connection,
                    step_id,
                    (JobState.RUNNING,),
                    JobState.FAILED,
                    Actor.RECONCILER,
                    actor,
                    values={"comment": reason},
                )
            state, comment = self._finalise_job(
                connection, job_id, None, Actor.RECONCILER, actor, run_ended=True, reason=reason
            )
            return StepResult(
                step_id=0,
                job_id=job_id,
                state=JobState.FAILED,
                job_state=state,
                job_comment=comment,
            )


def _check_queue_count(connection: sa.Connection, job_id: int, queue_count: int) -> None:
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


def _results(
    job_id: int, failed: Mapping[int, str], job_state: JobState | None, job_comment: str | None
) -> list[StepResult]:
    """One result per failed step; one with step id 0 for a job finalised without any."""
    step_ids = list(failed) or ([0] if job_state is not None else [])
    return [
        StepResult(
            step_id=step_id,
            job_id=job_id,
            state=JobState.FAILED,
            job_state=job_state,
            job_comment=job_comment,
        )
        for step_id in step_ids
    ]
