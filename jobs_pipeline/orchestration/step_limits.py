"""Alive is not enough: the reconciler's checks of runs that beat but do not progress.

- A step Running past its job type's maximum runtime (`jobs.step_limits`): it ends Failed
  `timed out after ...`, the run's other Running steps fail with the reason, the job is
  finalised and the run terminated.
- A run whose steps no worker picks up (a Celery queue without a worker, say): a Running job
  with steps waiting, none Running and none moving for longer than the pickup limit, while the
  run is alive and not waiting for a slot of the `perfdb` pool, fails its waiting steps and is
  terminated; a Queued job whose run started but never claimed it (its plan step was never
  picked up) for that long fails too.

Every age is the database's clock against the database's timestamps; the one age the database
cannot hold (how long a run has been started without claiming its Queued job) is measured from
the database's clock as the reconciler first saw that run started, kept in its cursor.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime

import dagster as dg
from dagster import DagsterRunStatus, RunsFilter

from jobs_pipeline import settings
from jobs_pipeline.jobs.step_limits import (
    human_duration,
    max_step_seconds,
    shortest_max_step_seconds,
)
from jobs_pipeline.orchestration.ops import PERFDB_POOL
from jobs_pipeline.orchestration.stop_runs import stop_run
from jobs_pipeline.orchestration.tags import JOB_ID_TAG, QUEUE_COUNT_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline.perfdb.step_limits import (
    database_now,
    jobs_idle_longer_than,
    steps_running_longer_than,
)

# How many started runs of Queued jobs the cursor remembers (bounded by the run coordinator's
# concurrency in practice).
MAX_UNCLAIMED = 500


class StepLimits:
    """One pass of the step-limit checks; `log(message)` and `warn(message)` report."""

    def __init__(
        self,
        perfdb: PerfDB,
        instance: dg.DagsterInstance,
        *,
        actor: str,
        batch_size: int,
        info: Callable[[str], None],
        warn: Callable[[str], None],
        pickup_seconds: float | None = None,
    ) -> None:
        self.perfdb = perfdb
        self.queue = perfdb.queue
        self.instance = instance
        self.actor = actor
        self.batch_size = batch_size
        self.info = info
        self.warn = warn
        self.pickup_seconds = (
            pickup_seconds if pickup_seconds is not None else settings.STEP_PICKUP_SECONDS.read()
        )

    def sweep(self, unclaimed: MutableMapping[str, str]) -> list[str]:
        """Runs every check; returns the jobs it ended. `unclaimed` (run id -> ISO time on the
        database clock) is the cursor's memory of started runs that have not claimed their
        job yet."""
        ended: list[str] = []
        ended += self.time_out_steps()
        ended += self.fail_idle_runs()
        ended += self.fail_unclaimed_jobs(unclaimed)
        return ended

    # --- maximum step runtime ----------------------------------------------------------------

    def time_out_steps(self) -> list[str]:
        shortest = shortest_max_step_seconds()
        ended: list[str] = []
        handled: set[str] = set()
        engine = self.perfdb.engine
        for step in steps_running_longer_than(engine, shortest, limit=self.batch_size):
            limit = max_step_seconds(step.type_name)
            if step.seconds <= limit or step.run_id in handled:
                continue
            handled.add(step.run_id)
            after = human_duration(limit)
            reason = f"step {step.step_id} timed out after {after}: run {step.run_id} terminated"
            try:
                # As the run would: the step fails (and the job with it, if nothing else is
                # left to run); the run's writes are fenced from here on.
                self.queue.finish_step(
                    step.step_id, f"timed out after {after}", run_id=step.run_id, actor=self.actor
                )
                self.queue.fail_running_steps_of_run(step.run_id, reason, actor=self.actor)
            except InputError as error:
                self.info(f"job {step.job_id} changed meanwhile, next sweep: {error}")
                continue
            self.info(f"job {step.job_id}: {reason}")
            self._terminate(step.run_id, reason)
            ended.append(f"job {step.job_id}")
        return ended

    # --- steps no worker picks up ------------------------------------------------------------

    def fail_idle_runs(self) -> list[str]:
        engine = self.perfdb.engine
        idle_jobs = jobs_idle_longer_than(engine, self.pickup_seconds, limit=self.batch_size)
        if not idle_jobs:
            return []
        waiting_for_pool = self._runs_waiting_for_pool()
        after = human_duration(self.pickup_seconds)
        ended: list[str] = []
        for idle in idle_jobs:
            run = self.instance.get_run_by_id(idle.run_id)
            if run is None or run.is_finished or idle.run_id in waiting_for_pool:
                # Ended or unknown: the reconciler's sweep of Running jobs finalises it.
                # Waiting for a `perfdb` slot: the steps have a worker, the database is busy.
                continue
            reason = f"no worker picked up a step of run {idle.run_id} within {after}"
            failures = dict.fromkeys(
                idle.waiting_step_ids, f"not picked up by a worker within {after}"
            )
            try:
                self.queue.fail_running_steps_of_run(
                    idle.run_id, f"{reason}: run terminated", actor=self.actor, op_failures=failures
                )
            except InputError as error:
                self.info(f"job {idle.job_id} changed meanwhile, next sweep: {error}")
                continue
            self.warn(f"job {idle.job_id}: {reason}")
            self._terminate(idle.run_id, reason)
            ended.append(f"job {idle.job_id}")
        return ended

    def fail_unclaimed_jobs(self, unclaimed: MutableMapping[str, str]) -> list[str]:
        """Queued jobs whose run for their current queue count is started but has not claimed
        them: the plan step waits for a worker. The wait is timed from when this reconciler
        first saw the run started (the time a run spends in Dagster's run queue is no worker's
        fault)."""
        candidates = self._started_runs_of_queued_jobs()
        for run_id in [run_id for run_id in unclaimed if run_id not in candidates]:
            del unclaimed[run_id]
        if not candidates:
            return []
        now = database_now(self.perfdb.engine)
        after = human_duration(self.pickup_seconds)
        ended: list[str] = []
        for run_id, (job_id, queue_count) in candidates.items():
            first_seen = datetime.fromisoformat(unclaimed.setdefault(run_id, now.isoformat()))
            if (now - first_seen).total_seconds() <= self.pickup_seconds:
                continue
            comment = (
                f"no worker picked up run {run_id} within {after} (is a worker listening to "
                f"its queue?): queue it again"
            )
            try:
                self.queue.fail_job(
                    job_id,
                    comment,
                    who=Actor.RECONCILER,
                    actor=self.actor,
                    queue_count=queue_count,
                )
            except InputError as error:
                self.info(f"job {job_id} changed meanwhile, next sweep: {error}")
                continue
            del unclaimed[run_id]
            self.warn(f"job {job_id}: {comment}")
            self._terminate(run_id, comment)
            ended.append(f"job {job_id}")
        while len(unclaimed) > MAX_UNCLAIMED:
            del unclaimed[next(iter(unclaimed))]
        return ended

    def _started_runs_of_queued_jobs(self) -> dict[str, tuple[int, int]]:
        """Started runs whose job is Queued with the run's queue count: run id -> (job id,
        queue count)."""
        records = self.instance.get_run_records(
            RunsFilter(statuses=[DagsterRunStatus.STARTED]), limit=MAX_UNCLAIMED
        )
        runs: dict[str, tuple[int, int]] = {}
        for record in records:
            tags = record.dagster_run.tags
            try:
                job_id, queue_count = int(tags[JOB_ID_TAG]), int(tags[QUEUE_COUNT_TAG])
            except (KeyError, ValueError):
                continue
            runs[record.dagster_run.run_id] = (job_id, queue_count)
        if not runs:
            return {}
        queued: dict[int, int] = {}
        for job_id in {job_id for job_id, _ in runs.values()}:
            try:
                job = self.queue.get_job(job_id)
            except InputError:
                continue  # deleted meanwhile
            if job.state == JobState.QUEUED:
                queued[job_id] = job.queue_count
        return {
            run_id: (job_id, count)
            for run_id, (job_id, count) in runs.items()
            if queued.get(job_id) == count
        }

    def _runs_waiting_for_pool(self) -> set[str]:
        try:
            info = self.instance.event_log_storage.get_concurrency_info(PERFDB_POOL)
        except Exception as error:  # a storage without pools: nothing waits for one
            self.info(f"could not read the {PERFDB_POOL} pool: {error}")
            return set()
        return info.pending_run_ids

    # --- helpers -----------------------------------------------------------------------------

    def _terminate(self, run_id: str, reason: str) -> None:
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            return
        try:
            stop_run(self.instance, run, reason)
        except Exception as error:
            self.warn(f"could not terminate run {run_id}: {error}")
