"""The job-type contract: `JobInstance` and `JobStepError`.

A job type subclasses `JobInstance`, sets `_name` (its `job_types.name`) and
`_parameters_schema`, and implements `_create_steps()` and `_run_step(step_id)`. It needs no
Dagster code: the standalone `run()` and the Dagster ops both go through `execute_step()`.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy.engine import Connection

from jobs_pipeline.jobs.heartbeat_thread import HeartbeatThread
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import (
    InputError,
    InvalidTransition,
    LostOwnership,
    is_transient,
)
from jobs_pipeline.perfdb.records import Job, NewStep, Step
from jobs_pipeline.perfdb.states import Actor, JobState

logger = logging.getLogger(__name__)

STANDALONE_START_STATES = (JobState.CREATED, JobState.QUEUED)
STANDALONE_RUN_PREFIX = "standalone-"


class JobStepError(Exception):
    """A step failed for a reason worth telling the user; the message goes into the step's
    `comment` column."""


@dataclass(frozen=True, kw_only=True)
class StepOutput:
    """What `_run_step` may return instead of a plain details dict.

    `write` stores the step's results; it runs in the transaction that marks the step Finished,
    after the check that this run still holds the job, so results and state commit together or
    not at all. `note` becomes the comment of a step that Finished with something to say (e.g.
    low data coverage).
    """

    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    write: Callable[[Connection], None] | None = None
    # Draws a PNG of what the step looked at, for people (Dagster's step page); called after
    # the step is stored, only by callers that show pictures.
    picture: Callable[[], bytes] | None = None


@dataclass(frozen=True, kw_only=True)
class StepOutcome:
    """What running one step did, for logs, Dagster metadata and the caller."""

    step_id: int
    state: JobState
    comment: str | None
    job_state: JobState | None
    job_comment: str | None
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    picture: Callable[[], bytes] | None = None
    # Steps that depended on this failed one and were failed without running.
    not_run: tuple[int, ...] = ()

    @property
    def failed(self) -> bool:
        return self.state == JobState.FAILED


class JobInstance:
    """One job of the queue, bound to the class of its type.

    `JobInstance(job_id)` is the seed's standalone path: it checks that the job exists, that
    its type is this class's `_name` and that it has not started yet (Created, or Queued), then
    `run()` runs every step in order. `JobInstance.load(job_id, ...)` binds to a job in any state
    for callers that move states themselves (the Dagster ops).
    """

    _name: ClassVar[str] = ""
    _description: ClassVar[str] = ""
    _parameters_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    # Steps that take seconds of CPU each: runs of this type use the parallel execution profile
    # when the deployment sets one (`JOBS_PIPELINE_HEAVY_EXECUTION`).
    _heavy_steps: ClassVar[bool] = False
    # Past this many seconds Running, the reconciler terminates the step's run and the step ends
    # Failed `timed out after ...` (`JOBS_PIPELINE_MAX_STEP_SECONDS` overrides it per type).
    _max_step_seconds: ClassVar[float] = 3600.0

    def __init__(
        self,
        job_id: int,
        skip_test: bool = True,
        delay_steps_creation: bool = False,
        *,
        perfdb: PerfDB | None = None,
    ) -> None:
        self._perfdb = perfdb or PerfDB.connect()
        self._job = self._perfdb.queue.get_job(job_id)
        self.skip_test = skip_test
        self._steps: dict[int, Step] | None = None
        self._check_type()
        if self._job.state not in STANDALONE_START_STATES:
            raise InvalidTransition(
                f"job {job_id} is {self._job.state.label}: only a Created or Queued job can run"
            )
        self._prepare()
        if not delay_steps_creation and not self.skipped:
            self.create_steps()

    @classmethod
    def load(cls, job_id: int, *, perfdb: PerfDB, job: Job | None = None) -> JobInstance:
        """Binds to the job whatever its state; the state machine guards what happens next.
        `job` is its record when the caller has just read it."""
        instance = cls.__new__(cls)
        instance._perfdb = perfdb
        instance._job = job if job is not None else perfdb.queue.get_job(job_id)
        instance.skip_test = False
        instance._steps = None
        instance._check_type()
        instance._prepare()
        return instance

    def _check_type(self) -> None:
        if self._job.type_name != self._name:
            raise InputError(
                f"job {self._job.id} is of type {self._job.type_name!r}, not {self._name!r}"
            )

    def _prepare(self) -> None:
        """Hook for subclasses to parse their parameters once."""

    # --- the seed's properties ---------------------------------------------------------------

    @property
    def job_id(self) -> int:
        return self._job.id

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._job.description

    @property
    def parameters(self) -> dict[str, Any]:
        return self._job.parameters

    @property
    def job_step_ids(self) -> list[int]:
        return list(self.steps)

    @property
    def perfdb(self) -> PerfDB:
        return self._perfdb

    @property
    def job(self) -> Job:
        return self._job

    @property
    def skipped(self) -> bool:
        """Test jobs (the word "test" in the description) are left alone when `skip_test` is on."""
        return self.skip_test and is_test_job(self._job.description)

    @property
    def steps(self) -> dict[int, Step]:
        """The job's steps by id, in position order (read once)."""
        if self._steps is None:
            self._steps = {step.id: step for step in self._perfdb.queue.get_steps(self.job_id)}
        return self._steps

    def refresh(self) -> None:
        self._job = self._perfdb.queue.get_job(self.job_id)
        self._steps = None

    # --- what subclasses implement -----------------------------------------------------------

    @classmethod
    def check_parameters(cls, perfdb: PerfDB, parameters: dict[str, Any]) -> None:
        """Checks what the JSON Schema cannot (dates, references); raises `InputError`."""

    def _create_steps(self) -> list[dict[str, Any]]:
        """The job's steps in order, as `job_steps` column values (object_id, alarm_id,
        feature_id)."""
        raise NotImplementedError

    def _run_step(self, step_id: int) -> StepOutput | dict[str, Any] | None:
        """Runs one step; raises `JobStepError` with a message for the step's comment. May
        return details worth showing (counts, timings), or a `StepOutput` whose `write` stores
        the results in the transaction that finishes the step."""
        raise NotImplementedError

    # --- running -----------------------------------------------------------------------------

    def create_steps(self) -> list[Step]:
        """Creates the job's steps if it has none yet (idempotent)."""
        if self.steps:
            return list(self.steps.values())
        columns = self._create_steps()
        created = self._perfdb.queue.create_steps(
            self.job_id, [NewStep(**step) for step in columns], actor=self._actor(None)
        )
        self._steps = {step.id: step for step in created}
        return created

    def steps_to_run(self) -> list[Step]:
        """Creates the steps if needed and returns those not Finished, those without
        dependencies first, then those that depend only on them, and so on (position order
        within a level). The instance must be freshly loaded (after the run took the job), so
        that step states are current."""
        steps = self.create_steps()
        levels = dependency_levels(steps)
        return sorted(
            (step for step in steps if step.state != JobState.FINISHED),
            key=lambda step: (levels[step.id], step.position),
        )

    def execute_step(self, step_id: int, run_id: str | None = None) -> StepOutcome:
        """Runs one step through the state machine: Running, then Finished or Failed with its
        comment; the last step of the job also writes the job's final state."""
        queue = self._perfdb.queue
        actor = self._actor(run_id)
        queue.start_step(step_id, run_id, actor=actor)
        started = time.perf_counter()
        error: str | None = None
        output = StepOutput()
        try:
            returned = self._run_step(step_id)
            if isinstance(returned, StepOutput):
                output = returned
            elif returned:
                output = StepOutput(details=dict(returned))
        except JobStepError as failure:
            error = str(failure) or type(failure).__name__
        except Exception as failure:
            logger.exception("step %s of job %s failed", step_id, self.job_id)
            error = f"Unknown error, please check the logs: {failure}"
        seconds = time.perf_counter() - started
        state_started = time.perf_counter()
        details = dict(output.details)
        try:
            result = queue.finish_step(
                step_id,
                error,
                run_id=run_id,
                actor=actor,
                note=None if error else output.note,
                details=details or None,
                write=None if error else output.write,
            )
        except Exception as failure:
            # Storing the results failed (a bug or a constraint, not a lost connection or a
            # lost job, which the caller handles): the step fails and nothing of it is kept.
            if error is not None or output.write is None or is_transient(failure):
                raise
            if isinstance(failure, InputError):
                raise
            logger.exception("results of step %s of job %s not stored", step_id, self.job_id)
            error = f"Unknown error, please check the logs: results not stored: {failure}"
            result = queue.finish_step(
                step_id, error, run_id=run_id, actor=actor, details=details or None
            )
        details.setdefault("state_update_seconds", time.perf_counter() - state_started)
        return StepOutcome(
            step_id=step_id,
            state=result.state,
            comment=error or output.note,
            job_state=result.job_state,
            job_comment=result.job_comment,
            seconds=seconds,
            details=details,
            picture=None if error else output.picture,
            not_run=result.not_run,
        )

    def check_dependencies(
        self,
        step_id: int,
        run_id: str | None,
        *,
        reruns: Callable[[Step], bool] = lambda step: True,
    ) -> StepOutcome | list[Step]:
        """Whether the step may start now: an empty list when every step it depends on
        Finished; the dependencies still to finish when some are Created or Running (or Failed
        under an earlier run and to be re-run by this one; `reruns` says which steps this run
        runs). When one failed in this run, or is not Finished and this run will not run it,
        the step is Failed without running (attempts unchanged) and its outcome returned. A
        job with a cancel request waits for nothing: the step's start fails it."""
        step = self.steps[step_id]
        if not step.depends_on:
            return []
        queue = self._perfdb.queue
        started = time.perf_counter()
        current = queue.get_step(step_id)
        if current.state == JobState.FAILED and current.run_id == run_id:
            # A dependency failed in this run and took this step with it.
            return self._not_run_outcome(current, started)
        dependencies = queue.dependencies_of(step_id)
        for dependency in dependencies:
            failed_here = dependency.state == JobState.FAILED and dependency.run_id == run_id
            never_run = dependency.state != JobState.FINISHED and not reruns(dependency)
            if failed_here or never_run:
                result = queue.fail_not_run(
                    step_id, dependency.id, run_id=run_id, actor=self._actor(run_id)
                )
                return self._not_run_outcome(
                    queue.get_step(step_id), started, result.job_state, result.job_comment
                )
        waiting = [step for step in dependencies if step.state != JobState.FINISHED]
        if waiting:
            job = queue.get_job(self.job_id)
            if job.state != JobState.RUNNING or job.run_id != run_id:
                raise LostOwnership(
                    f"job {self.job_id} is {job.state.label} and held by run {job.run_id}: "
                    f"run {run_id} no longer holds it"
                )
            if job.cancel_requested is not None:
                return []
        return waiting

    def _not_run_outcome(
        self,
        step: Step,
        started: float,
        job_state: JobState | None = None,
        job_comment: str | None = None,
    ) -> StepOutcome:
        if job_state is None:
            job = self._perfdb.queue.get_job(self.job_id)
            if job.state in (JobState.FINISHED, JobState.FAILED):
                job_state, job_comment = job.state, job.comment
        return StepOutcome(
            step_id=step.id,
            state=JobState.FAILED,
            comment=step.comment,
            job_state=job_state,
            job_comment=job_comment,
            seconds=time.perf_counter() - started,
        )

    def run(self) -> list[int]:
        """Runs every step not Finished, in order, without Dagster; returns the failed step
        ids. Test jobs are skipped when `skip_test` is on."""
        if self.skipped:
            logger.info("job %s is a test job and skip_test is on: not run", self.job_id)
            return []
        queue = self._perfdb.queue
        # A run id of its own, like a Dagster run's, so that steps it re-runs are told apart
        # from steps an earlier run left Failed.
        run_id = f"{STANDALONE_RUN_PREFIX}{uuid.uuid4().hex}"
        actor = self._actor(run_id)
        self._job = queue.claim_job(
            self.job_id, run_id, from_states=STANDALONE_START_STATES, actor=actor
        )
        try:
            self.create_steps()
        except InputError as error:
            queue.fail_job(
                self.job_id,
                str(error),
                from_states=(JobState.RUNNING,),
                who=Actor.RUN,
                run_id=run_id,
                actor=actor,
            )
            raise
        failed: list[int] = []
        # Position order runs every step after the steps it depends on; a failed step fails
        # its dependents on the way (`finish_step`), and they are not run.
        not_run: set[int] = set()
        with HeartbeatThread(queue, self.job_id, run_id):
            try:
                for step in list(self.steps.values()):
                    if step.state == JobState.FINISHED:
                        continue
                    if step.id in not_run:
                        failed.append(step.id)
                        continue
                    outcome = self.execute_step(step.id, run_id)
                    if outcome.failed:
                        failed.append(step.id)
                        not_run.update(outcome.not_run)
            except BaseException as error:
                # Nothing may stay Running: what this run started is failed with the reason.
                queue.fail_running_steps_of_run(
                    run_id, f"standalone run stopped: {error}", actor=actor
                )
                raise
        queue.finalise_job(self.job_id, run_id=run_id, actor=actor)
        self.refresh()
        return failed

    def _actor(self, run_id: str | None) -> str:
        if run_id and not run_id.startswith(STANDALONE_RUN_PREFIX):
            return f"run:{run_id}"
        return f"standalone:{self._name}"


def dependency_levels(steps: list[Step]) -> dict[int, int]:
    """Each step's level: 0 without dependencies, else one more than its deepest dependency.
    Steps depend only on earlier positions, so one pass in position order suffices."""
    levels: dict[int, int] = {}
    for step in sorted(steps, key=lambda step: step.position):
        levels[step.id] = 1 + max((levels[other] for other in step.depends_on), default=-1)
    return levels


# The seed's rule, by the word: "test run", "TEST of thresholds", "unit tests" mark test jobs;
# "latest" and "fastest" do not.
_TEST_WORD = re.compile(r"\btests?\b", re.IGNORECASE)


def is_test_job(description: str | None) -> bool:
    """Whether a description marks a test job: it has the word "test" (or "tests")."""
    return _TEST_WORD.search(description or "") is not None
