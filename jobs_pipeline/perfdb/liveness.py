"""Liveness and cancellation: the holding run's heartbeat, and cancel requests acted on."""

from __future__ import annotations

from jobs_pipeline.perfdb.clock import database_now
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.queue_rows import JOB, NO_CANCEL_REQUEST, actor_label
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline.perfdb.transitions import TransitionCore


class Liveness(TransitionCore):
    """Heartbeats of the holding run, and the cancel requests a frontend writes."""

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
                .values(heartbeat=database_now(), actor=actor_label(Actor.RUN, run_id))
            ).rowcount
        return bool(changed)

    def beat_queued(self, job_id: int) -> bool:
        """The heartbeat of a run that is alive but has not claimed the Queued job yet (its plan
        op waits for a worker or a process); False once the job is no longer Queued."""
        with begin(self.engine) as connection:
            changed = connection.execute(
                JOB.update()
                .where(JOB.c.id == job_id, JOB.c.state_id == JobState.QUEUED)
                .values(heartbeat=database_now(), actor=actor_label(Actor.RUN, "waiting"))
            ).rowcount
        return bool(changed)

    def handle_cancel_request(self, job_id: int, *, actor: str = "reconciler") -> Job:
        """Acts on a cancel request written by a frontend: Created or Queued -> Failed now;
        Running stays Running (its run must be terminated, then the run's steps fail with
        `canceled`); a job that already ended keeps its state and the request is cleared with a
        comment in its history."""
        with begin(self.engine) as connection:
            row = self._lock_holder(connection, job_id)
            state = JobState(row.state_id)
            if row.cancel_requested is not None:
                who = row.cancel_requested_by or "frontend"
                if state in (JobState.CREATED, JobState.QUEUED):
                    self._fail_canceled(connection, job_id, state, Actor.RECONCILER, who, actor)
                elif state in (JobState.FINISHED, JobState.FAILED):
                    connection.execute(
                        JOB.update()
                        .where(JOB.c.id == job_id)
                        .values(actor=actor_label(Actor.RECONCILER, actor), **NO_CANCEL_REQUEST)
                    )
                    self._record(
                        connection,
                        job_id,
                        None,
                        state,
                        state,
                        actor,
                        f"cancel request by {who} cleared: the job had already ended",
                    )
            return self._get_job(connection, job_id)
