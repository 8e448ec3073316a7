"""Queries behind the step limits: steps Running past their maximum runtime, and Running jobs
whose waiting steps no worker has picked up.

Ages are measured by the database clock against timestamps the database holds, in SQL, so the
clocks of the processes that wrote the rows and of the reconciler reading them do not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.models import JobInstanceRow, JobStepRow, JobType, table_of
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.types import to_utc

JOB = table_of(JobInstanceRow)
STEP = table_of(JobStepRow)
TYPES = table_of(JobType)

# SQLite's clock in the text form timestamps are stored in (`types.SQLITE_TIMESTAMP_FORMAT`).
_SQLITE_NOW_FORMAT = "%Y-%m-%d %H:%M:%f"


@dataclass(frozen=True, kw_only=True)
class RunningStep:
    """A step Running in the run that holds its job, and how long it has been running."""

    step_id: int
    job_id: int
    type_name: str
    run_id: str
    seconds: float


@dataclass(frozen=True, kw_only=True)
class IdleJob:
    """A Running job with steps left to run, none Running, and no step moving for `seconds`."""

    job_id: int
    run_id: str
    waiting_step_ids: list[int]
    seconds: float


def database_now(engine: Engine) -> datetime:
    """The database's clock, UTC."""
    with begin(engine, write=False) as connection:
        if engine.dialect.name == "sqlite":
            text = connection.scalar(sa.select(sa.func.strftime(_SQLITE_NOW_FORMAT, "now")))
            return to_utc(datetime.fromisoformat(str(text)))
        return to_utc(connection.execute(sa.select(sa.func.now())).scalar_one())


def _ago(engine: Engine, seconds: float) -> Any:
    """The database's clock `seconds` ago, comparable with the timestamp columns."""
    if engine.dialect.name == "sqlite":
        # `|| '000'`: the six fractional digits of the stored text, so that text order is time
        # order.
        return sa.func.strftime(_SQLITE_NOW_FORMAT, "now", f"-{seconds:.3f} seconds").op("||")(
            "000"
        )
    return sa.func.now() - sa.literal(timedelta(seconds=seconds), sa.Interval())


def _seconds_since(engine: Engine, column: Any) -> Any:
    """Seconds from `column` to the database's clock."""
    if engine.dialect.name == "sqlite":
        return (sa.func.julianday("now") - sa.func.julianday(column)) * 86400.0
    return sa.extract("epoch", sa.func.now() - column)


def steps_running_longer_than(engine: Engine, seconds: float, *, limit: int) -> list[RunningStep]:
    """Steps Running for more than `seconds` in the run that holds their job, longest first.
    A step Running under a run that lost the job is the reconciler's other business."""
    age = _seconds_since(engine, STEP.c.started).label("seconds")
    query = (
        sa.select(STEP.c.id, STEP.c.job_id, TYPES.c.name, JOB.c.run_id, age)
        .select_from(STEP)
        .join(JOB, JOB.c.id == STEP.c.job_id)
        .join(TYPES, TYPES.c.id == JOB.c.type_id)
        .where(
            JOB.c.state_id == JobState.RUNNING,
            STEP.c.state_id == JobState.RUNNING,
            STEP.c.run_id == JOB.c.run_id,
            STEP.c.started < _ago(engine, seconds),
        )
        .order_by(STEP.c.started, STEP.c.id)
        .limit(limit)
    )
    with begin(engine, write=False) as connection:
        return [
            RunningStep(
                step_id=row.id,
                job_id=row.job_id,
                type_name=row.name,
                run_id=row.run_id,
                seconds=float(row.seconds),
            )
            for row in connection.execute(query)
        ]


def jobs_idle_longer_than(
    engine: Engine, seconds: float, *, limit: int, waiting_ids: int = 100
) -> list[IdleJob]:
    """Running jobs of a run whose steps wait to be picked up: at least one step left to run
    (Created, or Failed under an earlier run), none Running, and neither the job nor any of its
    steps changed state for more than `seconds`."""
    since = _ago(engine, seconds)
    waiting = sa.or_(
        STEP.c.state_id == JobState.CREATED,
        sa.and_(STEP.c.state_id == JobState.FAILED, STEP.c.run_id.is_distinct_from(JOB.c.run_id)),
    )
    of_job = STEP.c.job_id == JOB.c.id
    query = (
        sa.select(
            JOB.c.id,
            JOB.c.run_id,
            _seconds_since(engine, JOB.c.last_state_change).label("seconds"),
        )
        .where(
            JOB.c.state_id == JobState.RUNNING,
            JOB.c.run_id.is_not(None),
            JOB.c.last_state_change < since,
            sa.exists().where(of_job, waiting),
            ~sa.exists().where(of_job, STEP.c.state_id == JobState.RUNNING),
            ~sa.exists().where(of_job, STEP.c.last_state_change >= since),
        )
        .order_by(JOB.c.id)
        .limit(limit)
    )
    idle: list[IdleJob] = []
    with begin(engine, write=False) as connection:
        for row in connection.execute(query).all():
            step_ids = connection.scalars(
                sa.select(STEP.c.id)
                .select_from(STEP.join(JOB, of_job))
                .where(JOB.c.id == row.id, waiting)
                .order_by(STEP.c.position)
                .limit(waiting_ids)
            ).all()
            quiet_since = connection.scalar(
                sa.select(_seconds_since(engine, sa.func.max(STEP.c.last_state_change))).where(
                    STEP.c.job_id == row.id
                )
            )
            quiet = float(row.seconds if quiet_since is None else min(row.seconds, quiet_since))
            idle.append(
                IdleJob(
                    job_id=row.id, run_id=row.run_id, waiting_step_ids=list(step_ids), seconds=quiet
                )
            )
    return idle
