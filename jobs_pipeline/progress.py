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
from jobs_pipeline.perfdb.step_states import step_states

# Up to this many changed steps are read one by one; more, all of the job's steps at once.
_SINGLE_READS = 20


def _step_label(step: Step) -> str:
    if step.alarm_id is not None:
        what = f" alarm {step.alarm_id}"
    else:
        what = f" {step.feature_name}" if step.feature_name else ""
    subject = f"{step.object_name or ''}{what}".strip()
    return f"step {step.id} ({subject})" if subject else f"step {step.id}"


class JobProgress:
    """Tracks a job's steps and renders each change."""

    def __init__(self, queue: Any, job_id: int, *, out: TextIO, tty: bool) -> None:
        self.queue = queue
        self.job_id = job_id
        self.out = out
        self.tty = tty
        self.started = time.monotonic()
        self.job: Job = queue.get_job(job_id)
        self.states: dict[int, JobState] = {}
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
        return sum(1 for state in self.states.values() if state == JobState.FAILED)

    @property
    def done(self) -> int:
        return sum(1 for state in self.states.values() if state in FINAL_STATES)

    def _read(self, steps: list[Step]) -> list[Step]:
        changed = [step for step in steps if self.states.get(step.id) != step.state]
        for step in steps:
            self.states[step.id] = step.state
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
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps  [red]{task.fields[failed]} failed[/red]"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                console=Console(file=self.out),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                "steps", total=self.total or None, completed=self.done, failed=self.failed, rate=""
            )
        else:
            self._line(f"job {self.job_id} {self.job.state.label}: {self._counts()}")
        return self

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _counts(self) -> str:
        return f"{self.done}/{self.total} steps done, {self.failed} failed"

    def _line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def poll(self) -> Job:
        """Reads what changed and shows it; returns the job as it is now."""
        job = self.queue.get_job(self.job_id)
        for step in self._read(self._changed_steps()):
            if step.state == JobState.FAILED:
                self._line(f"{_step_label(step)} failed: {step.comment or ''}")
            elif self._bar is None and step.state != JobState.CREATED:
                note = (
                    f" ({step.comment})" if step.comment and step.state == JobState.FINISHED else ""
                )
                self._line(f"{_step_label(step)} {step.state.label}{note} [{self._counts()}]")
        if job.state != self.job.state:
            if self._bar is None or job.state in FINAL_STATES:
                comment = f" ({job.comment})" if job.comment else ""
                self._line(f"job {self.job_id} {job.state.label}{comment}")
        self.job = job
        if self._bar is not None:
            elapsed = max(time.monotonic() - self.started, 1e-9)
            rate = (self.done - self._baseline_done) / elapsed
            self._bar.update(
                self._task,
                total=self.total or None,
                completed=self.done,
                failed=self.failed,
                rate=f"{rate:.1f} steps/s" if rate else "",
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
