"""The reconciler: a sweep that compares the job queue with Dagster every few seconds.

Correctness does not depend on an event being seen. Whatever died (a run worker, the whole
`dagster dev`, the machine), the sweep finds the rows that claim to be Running or Queued and
judges them by their run's status in Dagster and by the run's heartbeat:

- a Running job whose holding run has ended, is unknown to Dagster, or stopped sending
  heartbeats: its Running steps fail with a comment naming the run and why, then the job is
  finalised (a silent run still STARTED in Dagster is marked failed there, freeing its slot);
- a Queued job whose run for its current queue count ended before claiming it: Failed, so that
  it can be requeued; a Queued job that no run has picked up for long: a warning;
- a step still Running under a run that no longer holds its job (rows moved by hand): Failed,
  naming both runs, so that its job can end; a Running job without a run id, once silent:
  Failed, as no run will ever finish it;
- steps past their maximum runtime, and runs whose steps no worker picks up (`step_limits.py`);
- a cancel request: Created or Queued jobs fail at once, a Running job's run is terminated and
  its unfinished steps fail with `canceled` once the run has ended, a job that already ended has
  the request cleared with a comment.

Time is the database's: silences and waits are computed by the database from its own timestamps
(`JobQueue.ages`), never from this process's clock or from Dagster's run start times, which
come from the run worker's clock.

The job queries are bounded (`RECONCILER_BATCH_SIZE` rows of one indexed state at a time, the
cursor moving through the table), so a sweep costs the same however many jobs the table holds;
Dagster is asked for the runs of each batch's jobs by their job-id tag (every run a job has had).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster import DagsterEventType, DagsterRunStatus, RunRecord, RunsFilter

from jobs_pipeline import settings
from jobs_pipeline.orchestration.mapping_keys import step_id_from_step_key
from jobs_pipeline.orchestration.quiet_logs import DATABASE_UNREACHABLE
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.step_limits import MAX_UNCLAIMED, StepLimits
from jobs_pipeline.orchestration.stop_runs import stop_run
from jobs_pipeline.orchestration.summary import job_summary
from jobs_pipeline.orchestration.tags import JOB_ID_TAG, QUEUE_COUNT_TAG
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError, is_transient
from jobs_pipeline.perfdb.records import Job, JobAges
from jobs_pipeline.perfdb.states import Actor, JobState

RECONCILER_NAME = "perfdb_reconciler"
RECONCILER_INTERVAL_SECONDS = 3
RECONCILER_BATCH_SIZE = 100
RECONCILER_ACTOR = f"reconciler:{RECONCILER_NAME}"
_MAX_WARNED = 500

_STATUS_WORDS = {
    DagsterRunStatus.SUCCESS: "succeeded",
    DagsterRunStatus.FAILURE: "failed",
    DagsterRunStatus.CANCELED: "was canceled",
}


@dataclass
class Sweep:
    """What one sweep did, for the sensor's skip reason and log."""

    finalised: list[str] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{len(items)} {what}"
            for items, what in (
                (self.finalised, "jobs reconciled"),
                (self.canceled, "cancel requests handled"),
                (self.warnings, "warnings"),
            )
            if items
        ]
        return "; ".join(parts) or "nothing to reconcile"


@dataclass
class Cursor:
    running_after: int = 0
    queued_after: int = 0
    warned: list[int] = field(default_factory=list)
    # When each run still STARTED without having claimed its Queued job was first seen so, by
    # the database's clock (seconds since the epoch).
    started_seen: dict[str, float] = field(default_factory=dict)
    # Started runs not yet holding their Queued job: run id -> first seen (database clock).
    unclaimed: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        try:
            data = json.loads(text) if text else {}
            return cls(
                running_after=int(data.get("running_after", 0)),
                queued_after=int(data.get("queued_after", 0)),
                warned=[int(job_id) for job_id in data.get("warned", [])][-_MAX_WARNED:],
                started_seen={
                    str(run_id): float(seen)
                    for run_id, seen in dict(data.get("started_seen", {})).items()
                },
                unclaimed={
                    str(run_id): str(seen)
                    for run_id, seen in list(data.get("unclaimed", {}).items())[-MAX_UNCLAIMED:]
                },
            )
        except (ValueError, TypeError, AttributeError):
            return cls()

    def dump(self) -> str:
        return json.dumps(
            {
                "running_after": self.running_after,
                "queued_after": self.queued_after,
                "warned": self.warned[-_MAX_WARNED:],
                "started_seen": dict(list(self.started_seen.items())[-_MAX_WARNED:]),
                "unclaimed": self.unclaimed,
            }
        )


class Reconciler:
    """One sweep over the job queue against one Dagster instance."""

    def __init__(
        self,
        perfdb: PerfDB,
        instance: dg.DagsterInstance,
        *,
        log: Any = None,
        silence_seconds: float | None = None,
        queued_warning: float | None = None,
        batch_size: int = RECONCILER_BATCH_SIZE,
        pickup_seconds: float | None = None,
    ) -> None:
        self.perfdb = perfdb
        self.queue = perfdb.queue
        self.instance = instance
        self.log = log
        if silence_seconds is None:
            silence_seconds = settings.HEARTBEAT_SILENCE_SECONDS.read()
        if queued_warning is None:
            queued_warning = settings.QUEUED_WARNING_SECONDS.read()
        self.silence = silence_seconds
        self.queued_warning = queued_warning
        self.batch_size = batch_size
        self.step_limits = StepLimits(
            perfdb,
            instance,
            actor=RECONCILER_ACTOR,
            batch_size=batch_size,
            info=self._info,
            warn=self._warn,
            pickup_seconds=pickup_seconds,
        )

    def sweep(self, cursor: Cursor) -> Sweep:
        done = Sweep()
        self.handle_cancel_requests(done)
        cursor.running_after = self.sweep_running(cursor.running_after, done)
        cursor.queued_after = self.sweep_queued(
            cursor.queued_after, cursor.warned, done, cursor.started_seen
        )
        done.finalised += self.step_limits.sweep(cursor.unclaimed)
        return done

    # --- cancel requests ---------------------------------------------------------------------

    def handle_cancel_requests(self, done: Sweep) -> None:
        for job in self.queue.cancel_requests(limit=self.batch_size):
            if job.state == JobState.RUNNING:
                self._terminate_for_cancel(job, done)
                continue
            if job.state == JobState.QUEUED:
                self._cancel_dagster_runs_of(job)
            after = self._guarded(job, self.queue.handle_cancel_request, job.id)
            if after is not None:
                done.canceled.append(f"job {job.id}: {after.state.label} ({after.comment})")

    def _terminate_for_cancel(self, job: Job, done: Sweep) -> None:
        run = self.instance.get_run_by_id(job.run_id) if job.run_id else None
        if run is None or run.is_finished:
            return  # the running-jobs sweep finalises it with `canceled`
        if run.status != DagsterRunStatus.CANCELING:
            self._info(f"job {job.id}: cancel requested, terminating run {run.run_id}")
            self._stop_run(job, run)
            done.canceled.append(f"job {job.id}: run {run.run_id} terminating")

    def _stop_run(self, job: Job, run: dg.DagsterRun) -> None:
        """Cancels a run that has not started and terminates one that has. If termination
        fails, run monitoring's cancel timeout and the heartbeat still end the run."""
        try:
            stop_run(self.instance, run, f"job {job.id} was canceled")
        except Exception as error:
            self._warn(f"job {job.id}: could not stop run {run.run_id}: {error}")

    def _cancel_dagster_runs_of(self, job: Job) -> None:
        """A Queued job's run may wait in Dagster's queue: it must not start after the cancel."""
        for record in self._run_records_of([job]).get(job.id, []):
            run = record.dagster_run
            if not run.is_finished and run.tags.get(QUEUE_COUNT_TAG) == str(job.queue_count):
                self._stop_run(job, run)

    # --- Running jobs ------------------------------------------------------------------------

    def sweep_running(self, after_id: int, done: Sweep) -> int:
        jobs = self.queue.list_jobs(
            state=JobState.RUNNING, after_id=after_id, limit=self.batch_size
        )
        run_ids = [job.run_id for job in jobs if job.run_id]
        runs = (
            {run.run_id: run for run in self.instance.get_runs(RunsFilter(run_ids=run_ids))}
            if run_ids
            else {}
        )
        self._fail_steps_of_older_runs(jobs, done)
        ages = self.queue.ages([job.id for job in jobs])
        for job in jobs:
            self._judge_running(job, runs.get(job.run_id or ""), ages.get(job.id), done)
        return jobs[-1].id if len(jobs) == self.batch_size else 0

    def _judge_running(
        self, job: Job, run: dg.DagsterRun | None, ages: JobAges | None, done: Sweep
    ) -> None:
        if ages is None:
            return  # deleted meanwhile
        run_id = job.run_id or ""
        silent_for = ages.silent_seconds
        silent = silent_for > self.silence
        if not run_id:
            if silent:
                self._fail_unheld(job, silent_for, done)
            return
        canceled = job.cancel_requested is not None
        if run is not None and run.is_finished:
            status = _STATUS_WORDS.get(run.status, run.status.value.lower())
            reason = f"run {run_id} {status}"
            failure = self._failure_message(run) if run.status == DagsterRunStatus.FAILURE else ""
            if failure:
                reason += f": {failure}"
            self._finalise(
                job,
                reason,
                done,
                run=run,
                op_failures=self._op_failures(run)
                if run.status != DagsterRunStatus.SUCCESS
                else {},
                step_comment="canceled" if canceled else None,
            )
            return
        if not silent:
            return
        reason = f"run {run_id} stopped sending heartbeats ({silent_for:.0f} s)"
        if run is None and not run_id.startswith("standalone-"):
            reason = f"run {run_id or '(none)'} is unknown to Dagster and sends no heartbeats"
        elif run is not None:
            # Still STARTED (or queued) in Dagster, but its worker is gone: free its run slot.
            try:
                self.instance.report_run_failed(run, message=reason)
            except Exception as error:
                self._warn(f"could not mark run {run_id} failed in Dagster: {error}")
        self._finalise(job, reason, done, run=run, step_comment="canceled" if canceled else None)

    def _fail_steps_of_older_runs(self, jobs: Sequence[Job], done: Sweep) -> None:
        job_ids = [job.id for job in jobs]
        for result in self.queue.fail_steps_of_older_runs(job_ids, actor=RECONCILER_ACTOR):
            self._info(f"job {result.job_id}: step {result.step_id} of an older run failed")
            done.finalised.append(f"step {result.step_id} of job {result.job_id}")

    def _fail_unheld(self, job: Job, silent_for: float, done: Sweep) -> None:
        reason = f"Running without a run id and silent for {silent_for:.0f} s: no run holds it"
        result = self._guarded(
            job, self.queue.fail_running_job_without_run, job.id, reason, actor=RECONCILER_ACTOR
        )
        if result is not None:
            self._info(f"job {job.id}: {reason}")
            done.finalised.append(f"job {job.id}")

    def _finalise(
        self,
        job: Job,
        reason: str,
        done: Sweep,
        *,
        run: dg.DagsterRun | None = None,
        op_failures: Mapping[int, str] | None = None,
        step_comment: str | None = None,
    ) -> None:
        results = self._guarded(
            job,
            self.queue.fail_running_steps_of_run,
            job.run_id or "",
            reason,
            actor=RECONCILER_ACTOR,
            op_failures=op_failures,
            step_comment=step_comment,
        )
        if results:
            final = next((r for r in results if r.job_state is not None), None)
            outcome = (
                f"{final.job_state.label}: {final.job_comment}" if final and final.job_state else ""
            )
            self._info(f"job {job.id}: {reason}; {outcome}")
            done.finalised.append(f"job {job.id}")
            if final is not None and run is not None:
                self._attach_summary(run, job.id, outcome)

    def _attach_summary(self, run: dg.DagsterRun, job_id: int, outcome: str) -> None:
        """The dead run's page shows the job's outcome, as a finished run's summary op would."""
        try:
            # Dagster's own event type (not exported); without it the summary is left out.
            from dagster._core.events import EngineEventData

            metadata = job_summary(self.perfdb, job_id, run.run_id)
            self.instance.report_engine_event(
                f"job {job_id} {outcome}",
                dagster_run=run,
                engine_event_data=EngineEventData(metadata=metadata),
            )
        except Exception as error:  # the job is final already; the summary is a courtesy
            self._warn(f"could not attach the summary of job {job_id} to run {run.run_id}: {error}")

    def _failure_message(self, run: dg.DagsterRun) -> str:
        """Why the run failed: its first error that is not one of Dagster's wrappers (a broker
        that refused the connection, say), else the first line of its failure event."""
        records = self.instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            # Past Dagster's wrappers, to the error that says what went wrong.
            while error is not None and error.cls_name.startswith("Dagster") and error.cause:
                error = error.cause
            message = error.message if error is not None else ""
            if not message.strip():
                message = (event.message if event else None) or record.event_log_entry.message
            return message.strip().splitlines()[0] if message and message.strip() else ""
        return ""

    def _op_failures(self, run: dg.DagsterRun) -> dict[int, str]:
        """Step ops of the run that failed, by job step: a step whose op failed before the step
        could start (e.g. its start could not be written) fails with the op's error."""
        failures: dict[int, str] = {}
        records = self.instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.STEP_FAILURE, limit=self.batch_size * 10
        ).records
        for record in records:
            event = record.event_log_entry.dagster_event
            if event is None or event.step_key is None:
                continue
            step_id = step_id_from_step_key(event.step_key)
            if step_id is None:
                continue
            error = getattr(event.event_specific_data, "error", None)
            message = getattr(error, "message", None) or event.message or "op failed"
            failures[step_id] = f"op failed in run {run.run_id}: {message.strip().splitlines()[0]}"
        return failures

    # --- Queued jobs -------------------------------------------------------------------------

    def sweep_queued(
        self,
        after_id: int,
        warned: list[int],
        done: Sweep,
        started_seen: dict[str, float] | None = None,
    ) -> int:
        # Test jobs included: the queue sensor ends those it skips, so one still Queued is
        # as stranded as any other.
        jobs = self.queue.list_jobs(state=JobState.QUEUED, after_id=after_id, limit=self.batch_size)
        if not jobs:
            return 0
        self._fail_steps_of_older_runs(jobs, done)
        records_by_job = self._run_records_of(jobs)
        ages = self.queue.ages([job.id for job in jobs])
        started_seen = {} if started_seen is None else started_seen
        for job in jobs:
            job_ages = ages.get(job.id)
            if job_ages is None:
                continue  # deleted meanwhile
            records = [
                record
                for record in records_by_job.get(job.id, [])
                if record.dagster_run.tags.get(QUEUE_COUNT_TAG) == str(job.queue_count)
            ]
            if records:
                self._judge_queued(job, records, job_ages, started_seen, done)
            elif job.id not in warned:
                waited = job_ages.state_seconds
                if waited > self.queued_warning:
                    message = (
                        f"job {job.id} has been Queued for {waited / 60:.0f} min and no run has "
                        f"picked it up: is the queue sensor running?"
                    )
                    self._warn(message)
                    warned.append(job.id)
                    done.warnings.append(message)
        return jobs[-1].id if len(jobs) == self.batch_size else 0

    def _judge_queued(
        self,
        job: Job,
        records: Sequence[RunRecord],
        ages: JobAges,
        started_seen: dict[str, float],
        done: Sweep,
    ) -> None:
        """A Queued job's run for its current queue count: still waiting or working is fine;
        ended without claiming the job, or started long ago without claiming it (its worker
        died before the plan op), fails the job so that it can be queued again."""
        comment = None
        for record in records:
            run = record.dagster_run
            if not run.is_finished:
                if run.status != DagsterRunStatus.STARTED:
                    return  # queued in Dagster, or starting (run monitoring times that out)
                # Dagster's start time comes from the run worker's clock: the run's age is
                # counted from when a sweep first saw it started, by the database's clock.
                seen = started_seen.setdefault(run.run_id, ages.database_time)
                quiet = ages.database_time - seen
                if job.heartbeat is not None:
                    # A run whose plan op waits for a worker beats on the Queued job meanwhile.
                    quiet = min(quiet, ages.silent_seconds)
                if quiet <= self.silence:
                    return
                comment = (
                    f"run {run.run_id} started at least {quiet:.0f} s ago but never "
                    f"claimed the job: queue it again"
                )
                try:
                    self.instance.report_run_failed(run, message=comment)
                except Exception as error:
                    self._warn(f"could not mark run {run.run_id} failed in Dagster: {error}")
                break
        if comment is None:
            run = records[0].dagster_run
            status = _STATUS_WORDS.get(run.status, run.status.value.lower())
            failure = self._failure_message(run) if run.status == DagsterRunStatus.FAILURE else ""
            because = f" ({failure})" if failure else ""
            comment = (
                f"run {run.run_id} {status} before it claimed the job{because}: queue it again"
            )
        after = self._guarded(
            job,
            self.queue.fail_job,
            job.id,
            comment,
            who=Actor.RECONCILER,
            actor=RECONCILER_ACTOR,
            # The decision is about this queueing: a job claimed, finished and requeued since
            # the sweep read it is left alone.
            queue_count=job.queue_count,
        )
        if after is not None:
            self._info(f"job {job.id}: {comment}")
            done.finalised.append(f"job {job.id}")

    def _run_records_of(self, jobs: Sequence[Job]) -> dict[int, list[RunRecord]]:
        records = self.instance.get_run_records(
            RunsFilter(tags={JOB_ID_TAG: [str(job.id) for job in jobs]})
        )
        by_job: dict[int, list[RunRecord]] = {}
        for record in records:
            try:
                by_job.setdefault(int(record.dagster_run.tags[JOB_ID_TAG]), []).append(record)
            except (KeyError, ValueError):
                continue
        return by_job

    # --- helpers -----------------------------------------------------------------------------

    def _guarded(self, job: Job, action, *args, **kwargs):  # type: ignore[no-untyped-def]
        """Runs one job's action; a job that changed meanwhile is left for the next sweep."""
        try:
            return action(*args, **kwargs)
        except InputError as error:
            self._info(f"job {job.id} changed meanwhile, next sweep: {error}")
            return None

    def _info(self, message: str) -> None:
        if self.log is not None:
            self.log.info(message)

    def _warn(self, message: str) -> None:
        if self.log is not None:
            self.log.warning(message)


@dg.sensor(
    name=RECONCILER_NAME,
    minimum_interval_seconds=RECONCILER_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Fails jobs whose run ended, vanished or went silent, and Queued jobs whose run "
    "ended before claiming them; acts on cancel requests.",
)
def perfdb_reconciler(context: dg.SensorEvaluationContext, perfdb: PerfDBResource):
    cursor = Cursor.parse(context.cursor)
    reconciler = Reconciler(perfdb.get(), context.instance, log=context.log)
    try:
        done = reconciler.sweep(cursor)
    except Exception as error:
        if not is_transient(error):
            raise
        # The database is restarting: the next sweep picks up where this one stopped.
        return dg.SkipReason(f"{DATABASE_UNREACHABLE}: {error}")
    context.update_cursor(cursor.dump())
    return dg.SkipReason(done.summary())
