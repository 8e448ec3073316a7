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


Transitions = dict[tuple[JobState | None, JobState], frozenset[Actor]]

JOB_TRANSITIONS: Transitions = {
    # created, or created and submitted at once
    (None, JobState.CREATED): frozenset({Actor.USER}),
    # (the scheduler sensor creates each ended period's job Queued)
    (None, JobState.QUEUED): frozenset({Actor.USER, Actor.SENSOR}),
    # parameters or description edited
    (JobState.CREATED, JobState.CREATED): frozenset({Actor.USER}),
    # submitted
    (JobState.CREATED, JobState.QUEUED): frozenset({Actor.USER}),
    # requeued: the steps not Finished run again
    (JobState.FAILED, JobState.QUEUED): frozenset({Actor.USER}),
    # requeued: every step runs again
    (JobState.FINISHED, JobState.QUEUED): frozenset({Actor.USER}),
    # claimed by the run launched for it
    (JobState.QUEUED, JobState.RUNNING): frozenset({Actor.RUN}),
    # the seed's standalone `run()` of a Created job
    (JobState.CREATED, JobState.RUNNING): frozenset({Actor.RUN}),
    # re-execution started from the Dagster UI
    (JobState.FAILED, JobState.RUNNING): frozenset({Actor.RUN}),
    # "re-execute all" of a Finished job
    (JobState.FINISHED, JobState.RUNNING): frozenset({Actor.RUN}),
    # last step finished (or the run ended)
    (JobState.RUNNING, JobState.FINISHED): frozenset({Actor.RUN, Actor.RECONCILER}),
    # a step failed, the run died, or canceled
    (JobState.RUNNING, JobState.FAILED): frozenset({Actor.RUN, Actor.RECONCILER}),
    # malformed row; its run ended before claiming it; canceled
    (JobState.QUEUED, JobState.FAILED): frozenset({Actor.SENSOR, Actor.RECONCILER, Actor.USER}),
    # canceled
    (JobState.CREATED, JobState.FAILED): frozenset({Actor.USER, Actor.RECONCILER}),
}

STEP_TRANSITIONS: Transitions = {
    # created when a run (or `run()`) plans the job
    (None, JobState.CREATED): frozenset({Actor.RUN}),
    # started
    (JobState.CREATED, JobState.RUNNING): frozenset({Actor.RUN}),
    # re-run after a failure
    (JobState.FAILED, JobState.RUNNING): frozenset({Actor.RUN}),
    # the holding run restarts its own step (retry, redelivery)
    (JobState.RUNNING, JobState.RUNNING): frozenset({Actor.RUN}),
    # finished
    (JobState.RUNNING, JobState.FINISHED): frozenset({Actor.RUN}),
    # failed, or its run died
    (JobState.RUNNING, JobState.FAILED): frozenset({Actor.RUN, Actor.RECONCILER}),
    # its op failed before it started; canceled
    (JobState.CREATED, JobState.FAILED): frozenset({Actor.RUN, Actor.RECONCILER}),
    # failed under an earlier run, canceled before its re-run
    (JobState.FAILED, JobState.FAILED): frozenset({Actor.RUN}),
    # recompute all: by a run reopening a Finished job, or by the database when a user queues
    # a Finished job again (users move steps only so)
    (JobState.FINISHED, JobState.CREATED): frozenset({Actor.USER, Actor.RUN}),
}


def check_transitions(
    table: Transitions, sources: tuple[JobState | None, ...], target: JobState, who: Actor
) -> None:
    """Raises `ValueError` (a bug, not bad input) for a move the table does not allow."""
    for source in sources:
        if who not in table.get((source, target), frozenset()):
            label = "new" if source is None else source.label
            raise ValueError(f"{who.value} may not move a {label} record to {target.label}")
