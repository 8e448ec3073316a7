"""The state of every step of a job, in one narrow query, for following a job live.

Paging by `last_state_change` misses steps: a transaction takes its timestamp before it gets
the job's row lock and may commit after a later one, so a reader that moved past the later
timestamp never sees the earlier one. Comparing every step's state with what the reader saw
last has no such gap, and costs one index range of (id, state) pairs per poll.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.models import JobStepRow, table_of
from jobs_pipeline.perfdb.states import JobState

STEP = table_of(JobStepRow)


def step_states(engine: Engine, job_id: int) -> dict[int, JobState]:
    """Step id -> state, for every step of the job."""
    query = sa.select(STEP.c.id, STEP.c.state_id).where(STEP.c.job_id == job_id)
    with begin(engine, write=False) as connection:
        return {row.id: JobState(row.state_id) for row in connection.execute(query)}
