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


class Actor(enum.Enum):
    """Who moves a state: every transition names one, and the tables below say who may."""

    USER = "user"  # a person or a frontend: the CLI, the API, a row update
    SENSOR = "sensor"  # the queue sensor: launches runs, refuses malformed rows
    RUN = "run"  # the run holding the job: a Dagster run or a standalone `run()`
    RECONCILER = "reconciler"  # acts for runs that ended or went silent, and on cancel requests


_C, _Q, _R, _D, _F = (
    JobState.CREATED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.FINISHED,
    JobState.FAILED,
)
_USER, _SENSOR, _RUN, _RECONCILER = Actor.USER, Actor.SENSOR, Actor.RUN, Actor.RECONCILER

Transitions = dict[tuple[JobState | None, JobState], frozenset[Actor]]

JOB_TRANSITIONS: Transitions = {
    (None, _C): frozenset({_USER}),  # created
    (_C, _C): frozenset({_USER}),  # parameters or description edited
    (_C, _Q): frozenset({_USER}),  # submitted
    (_F, _Q): frozenset({_USER}),  # requeued: the steps not Finished run again
    (_D, _Q): frozenset({_USER}),  # requeued: every step runs again
    (_Q, _R): frozenset({_RUN}),  # claimed by the run launched for it
    (_C, _R): frozenset({_RUN}),  # the seed's standalone `run()` of a Created job
    (_F, _R): frozenset({_RUN}),  # re-execution started from the Dagster UI
    (_D, _R): frozenset({_RUN}),  # "re-execute all" of a Finished job
    (_R, _D): frozenset({_RUN, _RECONCILER}),  # last step finished (or the run ended)
    (_R, _F): frozenset({_RUN, _RECONCILER}),  # a step failed, the run died, or canceled
    (_Q, _F): frozenset({_SENSOR, _RECONCILER, _USER}),  # malformed; run ended unclaimed; cancel
    (_C, _F): frozenset({_USER, _RECONCILER}),  # canceled
}

STEP_TRANSITIONS: Transitions = {
    (None, _C): frozenset({_RUN, _USER}),  # created when a run (or `run()`) plans the job
    (_C, _R): frozenset({_RUN}),  # started
    (_F, _R): frozenset({_RUN}),  # re-run after a failure
    (_R, _R): frozenset({_RUN}),  # the holding run restarts its own step (retry, redelivery)
    (_R, _D): frozenset({_RUN}),
    (_R, _F): frozenset({_RUN, _RECONCILER}),  # failed, or its run died
    (_C, _F): frozenset({_RUN, _RECONCILER}),  # its op failed before it started; canceled
    (_F, _F): frozenset({_RUN}),  # failed under an earlier run, canceled before its re-run
    (_D, _C): frozenset({_USER, _RUN}),  # recompute all
}


def check_transitions(
    table: Transitions, sources: tuple[JobState | None, ...], target: JobState, who: Actor
) -> None:
    """Raises `ValueError` (a bug, not bad input) for a move the table does not allow."""
    for source in sources:
        if who not in table.get((source, target), frozenset()):
            label = "new" if source is None else source.label
            raise ValueError(f"{who.value} may not move a {label} record to {target.label}")
