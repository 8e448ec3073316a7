"""Following a job's steps live: a progress bar on a terminal, one line per change otherwise.

Used by `job run` (while its run executes) and `job watch` (any job, whoever launched it). It
reads the performance database only: each poll costs one query for the job, one narrow query
for the state of every step (`perfdb.step_states`: paging by change time can miss a step that
commits out of order) and the full rows of the steps whose state changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TextIO

from jobs_pipeline.perfdb.records import Job, Step
from jobs_pipeline.perfdb.states import FINAL_STATES, JobState
from jobs_pipeline.perfdb.step_dependencies import CANCELED_NOT_RUN, never_ran
from jobs_pipeline.perfdb.step_states import step_states

# Up to this many changed steps are read one by one; more, all of the job's steps at once.
_SINGLE_READS = 20
# What a watcher sees until a run claims the job: it has no steps to count yet.
WAITING_FOR_RUN = "waiting for run ..."


def _step_label(step: Step) -> str:
    if step.alarm_id is not None:
        what = f" alarm {step.alarm_id}"
    else:
        what = f" {step.feature_name}" if step.feature_name else ""
    subject = f"{step.object_name or ''}{what}".strip()
    return f"step {step.id} ({subject})" if subject else f"step {step.id}"


class JobProgress:
    """Tracks a job's steps and renders each change."""

    def __init__(
        self, queue: Any, job_id: int, *, out: TextIO, tty: bool, final_line: bool = True
    ) -> None:
        self.queue = queue
        self.job_id = job_id
        self.out = out
        self.tty = tty
        # Whether the job's end gets a line here (`job run` prints the outcome itself).
        self.final_line = final_line
        self.started = time.monotonic()
        self.job: Job = queue.get_job(job_id)
        self.states: dict[int, JobState] = {}
        # Failed steps that never started (a canceled job, a failed dependency).
        self.not_run: set[int] = set()
        self._bar: Any = None
        self._task: Any = None
        self._baseline_done = 0
        self._read(queue.get_steps(job_id))
        self._baseline_done = self.done

    # --- counts ------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.states)

    @property
    def failed(self) -> int:
        """Steps that ran and failed; those that never started are counted apart."""
        return sum(
            1
            for step_id, state in self.states.items()
            if state == JobState.FAILED and step_id not in self.not_run
        )

    @property
    def done(self) -> int:
        return sum(1 for state in self.states.values() if state in FINAL_STATES)

    def _read(self, steps: list[Step]) -> list[Step]:
        changed = [step for step in steps if self.states.get(step.id) != step.state]
        for step in steps:
            self.states[step.id] = step.state
            if step.state == JobState.FAILED and never_ran(step.comment):
                self.not_run.add(step.id)
            else:
                self.not_run.discard(step.id)
        return changed

    def _changed_steps(self) -> list[Step]:
        """The steps whose state differs from the one last seen."""
        current = step_states(self.queue.engine, self.job_id)
        changed = [
            step_id for step_id, state in current.items() if self.states.get(step_id) != state
        ]
        if not changed:
            return []
        if len(changed) > _SINGLE_READS:
            wanted = set(changed)
            return [step for step in self.queue.get_steps(self.job_id) if step.id in wanted]
        return [self.queue.get_step(step_id) for step_id in changed]

    # --- rendering ---------------------------------------------------------------------------

    def __enter__(self) -> JobProgress:
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn(f"job {self.job_id}"),
                TextColumn("{task.fields[waiting]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps  [red]{task.fields[failed]} failed[/red]{task.fields[not_run]}"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=Console(file=self.out),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("steps", **self._bar_fields(), rate="")
        elif self._waiting(self.job):
            self._line(f"job {self.job_id} {self.job.state.label}: {WAITING_FOR_RUN}")
        else:
            comment = f" ({self.job.comment})" if self.job.comment else ""
            ended = self.job.state in FINAL_STATES
            self._line(
                f"job {self.job_id} {self.job.state.label}{comment if ended else ''}: "
                f"{self._counts()}"
            )
        return self

    def _waiting(self, job: Job) -> bool:
        """Whether no run has claimed the job yet: there are no steps to count."""
        return job.state == JobState.QUEUED or (job.state == JobState.CREATED and not self.total)

    def _bar_fields(self) -> dict[str, Any]:
        not_run = len(self.not_run)
        return {
            "total": self.total or None,
            "completed": self.done,
            "failed": self.failed,
            "not_run": f", {not_run} not run" if not_run else "",
            "waiting": WAITING_FOR_RUN if self._waiting(self.job) else "",
        }

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _counts(self) -> str:
        not_run = f", {len(self.not_run)} not run" if self.not_run else ""
        return f"{self.done}/{self.total} steps done, {self.failed} failed{not_run}"

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def poll(self) -> Job:
        """Reads what changed and shows it; returns the job as it is now."""
        job = self.queue.get_job(self.job_id)
        canceled = 0
        for step in self._read(self._changed_steps()):
            if step.state == JobState.FAILED and step.comment == CANCELED_NOT_RUN:
                canceled += 1  # one line for all of them, below
            elif step.state == JobState.FAILED:
                self._line(f"{_step_label(step)} failed: {step.comment or ''}")
            elif self._bar is None and step.state != JobState.CREATED:
                note = (
                    f" ({step.comment})" if step.comment and step.state == JobState.FINISHED else ""
                )
                self._line(f"{_step_label(step)} {step.state.label}{note} [{self._counts()}]")
        if canceled:
            steps = "1 step" if canceled == 1 else f"{canceled} steps"
            self._line(f"{steps} {CANCELED_NOT_RUN} [{self._counts()}]")
        if job.state != self.job.state:
            ended = job.state in FINAL_STATES
            if (self._bar is None and not ended) or (ended and self.final_line):
                comment = f" ({job.comment})" if job.comment else ""
                run = f" (run {job.run_id})" if job.state == JobState.RUNNING and job.run_id else ""
                self._line(f"job {self.job_id} {job.state.label}{comment}{run}")
        self.job = job
        if self._bar is not None:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = (self.done - self._baseline_done) / elapsed
            self._bar.update(
                self._task, **self._bar_fields(), rate=f"{rate:.1f} steps/s" if rate else ""
            )
        return job


def follow(
    queue: Any,
    job_id: int,
    *,
    out: TextIO,
    tty: bool,
    poll_seconds: float = 0.5,
    still_going: Callable[[], bool] | None = None,
) -> Job:
    """Shows the job's progress until it is Finished or Failed (or `still_going()` says the
    run that should move it has ended). Ctrl-C stops following and leaves the job alone."""
    with JobProgress(queue, job_id, out=out, tty=tty) as progress:
        while True:
            job = progress.poll()
            if job.state in FINAL_STATES and progress.done == progress.total:
                return job
            if job.state in FINAL_STATES or (still_going is not None and not still_going()):
                return progress.poll()
            time.sleep(poll_seconds)
