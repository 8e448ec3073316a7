"""The job queue: every query and every state transition of jobs and steps.

Each transition is one guarded UPDATE (`... WHERE state IN <expected>`); when it changes no row,
the current state is read back and reported in an `InvalidTransition` (or `NotFound`). Each
statement names its actor; the database's triggers (`perfdb/rules_*.py`) check the move, write the
`job_state_history` row and stamp the timestamps with the database clock.

`JobQueue` is assembled from one part per kind of writer, all built on `TransitionCore`
(`perfdb/transitions.py`).
"""

from __future__ import annotations

from jobs_pipeline.perfdb.job_reads import JobReads
from jobs_pipeline.perfdb.liveness import Liveness
from jobs_pipeline.perfdb.queue_rows import (
    DEFAULT_ACTOR,
    MAX_COMMENT_CHARS,
    bounded,
    failed_steps_comment,
    job_outcome,
    utcnow,
    validate_against_schema,
)
from jobs_pipeline.perfdb.reconciler_writes import ReconcilerWrites
from jobs_pipeline.perfdb.run_moves import RunMoves
from jobs_pipeline.perfdb.user_moves import UserMoves

__all__ = [
    "DEFAULT_ACTOR",
    "MAX_COMMENT_CHARS",
    "JobQueue",
    "bounded",
    "failed_steps_comment",
    "job_outcome",
    "utcnow",
    "validate_against_schema",
]


class JobQueue(UserMoves, RunMoves, Liveness, ReconcilerWrites, JobReads):
    """Owns the job queue tables of one performance database: what people and frontends do
    (`UserMoves`), what the holding run writes (`RunMoves`), heartbeats and cancel requests
    (`Liveness`), what the reconciler and sensor write (`ReconcilerWrites`) and the reads
    (`JobReads`)."""
