"""Job and step states, with the transitions the state machine allows."""

from __future__ import annotations

import enum


class JobState(enum.IntEnum):
    """Seeded into `job_states`; the integer is the row id."""

    CREATED = 1  # written by the frontend or the CLI, still editable
    QUEUED = 2  # waiting for the sensor to launch a run
    RUNNING = 3  # claimed by a run (jobs) or executing (steps)
    FINISHED = 4  # done without error
    FAILED = 5  # done, with at least one failed step (jobs) or an error (steps)

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @classmethod
    def parse(cls, text: str) -> JobState:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(state.label for state in cls)
            raise ValueError(f"unknown state {text!r}: expected one of {names}") from None


FINAL_STATES = frozenset({JobState.FINISHED, JobState.FAILED})

# Which states a job may be queued from: submit, requeue after failure, recompute all.
QUEUEABLE_STATES = (JobState.CREATED, JobState.FAILED, JobState.FINISHED)
