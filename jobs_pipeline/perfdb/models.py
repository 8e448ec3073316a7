"""SQLAlchemy models of the performance database: the job queue and the domain tables.

The Alembic migrations under `migrations/` build exactly this schema (a test compares them),
plus the triggers that keep the state machine's rules (`perfdb/rules_*.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from jobs_pipeline.perfdb.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# The triggers stamp these with the database clock; the default lets a plain INSERT leave them out.
DATABASE_NOW = sa.text("CURRENT_TIMESTAMP")

# JSON on SQLite, JSONB on PostgreSQL (indexable, compact, compares by value).
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONDocument,
    }


# --- job queue -------------------------------------------------------------------------------


class JobStateRow(Base):
    __tablename__ = "job_states"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(20), unique=True)


class JobType(Base):
    __tablename__ = "job_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    parameters_schema: Mapped[dict[str, Any]]


class JobInstanceRow(Base):
    __tablename__ = "job_instances"
    __table_args__ = (
        sa.CheckConstraint("queue_count >= 0", name="queue_count_not_negative"),
        # The sensor's query: queued jobs in id order, cheap however many finished jobs exist.
        sa.Index("ix_job_instances_state_id_id", "state_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("job_types.id"))
    state_id: Mapped[int] = mapped_column(sa.ForeignKey("job_states.id"))
    parameters: Mapped[dict[str, Any]]
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    comment: Mapped[str | None] = mapped_column(sa.Text)
    created: Mapped[datetime] = mapped_column(server_default=DATABASE_NOW)
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    last_state_change: Mapped[datetime] = mapped_column(server_default=DATABASE_NOW)
    queue_count: Mapped[int] = mapped_column(server_default="0")
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    # Written by the holding run every few seconds; a silent holder is presumed dead.
    heartbeat: Mapped[datetime | None]
    # A frontend cancels a job by setting these; the reconciler acts on them and clears them.
    cancel_requested: Mapped[datetime | None] = mapped_column(index=True)
    cancel_requested_by: Mapped[str | None] = mapped_column(sa.String(200))
    # Who makes this statement (`run:<id>`, `user:cli`, ...): read and cleared by the triggers.
    actor: Mapped[str | None] = mapped_column(sa.String(200))


class JobStepRow(Base):
    __tablename__ = "job_steps"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "object_id", "alarm_id", "feature_id"),
        sa.UniqueConstraint("job_id", "position"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # "Is any step of this job left to run?" after every step (see `JobQueue`).
        sa.Index("ix_job_steps_job_id_state_id", "job_id", "state_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job_instances.id", ondelete="CASCADE"))
    position: Mapped[int]
    # NULL for a step about no object (a Data Import step is about a file).
    object_id: Mapped[int | None] = mapped_column(sa.ForeignKey("objects.id"))
    alarm_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alarm_definitions.id"))
    feature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("features.id"))
    state_id: Mapped[int] = mapped_column(sa.ForeignKey("job_states.id"))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    created: Mapped[datetime] = mapped_column(server_default=DATABASE_NOW)
    started: Mapped[datetime | None]
    finished: Mapped[datetime | None]
    last_state_change: Mapped[datetime] = mapped_column(server_default=DATABASE_NOW)
    attempts: Mapped[int] = mapped_column(server_default="0")
    run_id: Mapped[str | None] = mapped_column(sa.String(64))
    # What the step reported (data quality, counts), as JSON for people and tools.
    details: Mapped[dict[str, Any] | None]
    # Who makes this statement: read and cleared by the triggers, like the job's.
    actor: Mapped[str | None] = mapped_column(sa.String(200))


class JobStepDependencyRow(Base):
    """Step `step_id` starts only once step `depends_on_id` (of the same job) Finished."""

    __tablename__ = "job_step_dependencies"

    step_id: Mapped[int] = mapped_column(
        sa.ForeignKey("job_steps.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: a failed step looks up its dependents.
    depends_on_id: Mapped[int] = mapped_column(
        sa.ForeignKey("job_steps.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class JobStateHistoryRow(Base):
    """One row per transition of a job or of one of its steps (step_id set)."""

    __tablename__ = "job_state_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(
        sa.ForeignKey("job_instances.id", ondelete="CASCADE"), index=True
    )
    step_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("job_steps.id", ondelete="CASCADE"), index=True
    )
    from_state_id: Mapped[int | None] = mapped_column(sa.ForeignKey("job_states.id"))
    to_state_id: Mapped[int] = mapped_column(sa.ForeignKey("job_states.id"))
    actor: Mapped[str] = mapped_column(sa.String(200))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    changed_at: Mapped[datetime]


# --- schedules -------------------------------------------------------------------------------


class JobScheduleRow(Base):
    """A periodic job: one Queued job per ended period (`calc/periods.py`), made by the
    `perfdb_scheduler` sensor. A frontend may insert a row with the first eight columns only; the
    sensor fills in `first_start` (the period holding the moment it first sees the row),
    `next_start` and `next_due`."""

    __tablename__ = "job_schedules"
    __table_args__ = (
        sa.CheckConstraint("delay_seconds >= 0", name="delay_not_negative"),
        sa.CheckConstraint("catch_up >= 0", name="catch_up_not_negative"),
        # The sensor's query: enabled schedules whose next period is due (or not yet planned),
        # one index lookup however many schedules wait.
        sa.Index("ix_job_schedules_enabled_next_due", "enabled", "next_due"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("job_types.id"))
    # The job parameters without `start`/`end`, which each period adds.
    parameters: Mapped[dict[str, Any]]
    every: Mapped[str] = mapped_column(sa.String(20))
    timezone: Mapped[str] = mapped_column(sa.String(64), server_default="UTC")
    # How long after a period's end its job is created (late data).
    delay_seconds: Mapped[int] = mapped_column(server_default="0")
    # Missed periods created at once after a downtime, besides the newest ended one.
    catch_up: Mapped[int] = mapped_column(server_default="3")
    enabled: Mapped[bool] = mapped_column(server_default=sa.true())
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    # Why the schedule was disabled (set by the sensor, or by whoever paused it).
    comment: Mapped[str | None] = mapped_column(sa.Text)
    first_start: Mapped[datetime | None]
    # The first period the sensor has not decided on yet, and when it is due (end + delay).
    next_start: Mapped[datetime | None]
    next_due: Mapped[datetime | None]


class JobSchedulePeriodRow(Base):
    """The periods a schedule has created a job for. The primary key makes each period happen
    once, whoever creates it (sensor ticks, daemons, backfills); the row outlives its job, so a
    deleted job is never created again."""

    __tablename__ = "job_schedule_periods"

    schedule_id: Mapped[int] = mapped_column(
        sa.ForeignKey("job_schedules.id", ondelete="CASCADE"), primary_key=True
    )
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    period_end: Mapped[datetime]
    job_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("job_instances.id", ondelete="SET NULL"), index=True
    )
    created: Mapped[datetime]


# --- domain ----------------------------------------------------------------------------------


class ObjectRow(Base):
    __tablename__ = "objects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)


class FeatureRow(Base):
    __tablename__ = "features"
    __table_args__ = (
        sa.CheckConstraint("sampling_period_seconds > 0", name="sampling_period_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    unit: Mapped[str] = mapped_column(sa.String(50), server_default="")
    sampling_period_seconds: Mapped[int] = mapped_column(server_default="600")


class DerivedFeatureRow(Base):
    """A feature computed from others by an expression (`calc/expressions.py`); its unit and
    sampling period are those of its `features` row, its values go to `feature_values`."""

    __tablename__ = "derived_features"

    feature_id: Mapped[int] = mapped_column(
        sa.ForeignKey("features.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    expression: Mapped[str] = mapped_column(sa.Text)


class DerivedFeatureInputRow(Base):
    """The features an expression reads: what a cycle check and the lineage follow."""

    __tablename__ = "derived_feature_inputs"

    feature_id: Mapped[int] = mapped_column(
        sa.ForeignKey("derived_features.feature_id", ondelete="CASCADE"), primary_key=True
    )
    input_id: Mapped[int] = mapped_column(
        sa.ForeignKey("features.id"), primary_key=True, index=True
    )


class FeatureValueRow(Base):
    """No foreign keys: checking them per row made a bulk import five times slower than the
    COPY itself. Imports create or resolve the objects and features before writing values, and
    triggers refuse to delete an object or feature that has values."""

    __tablename__ = "feature_values"

    object_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    feature_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    timestamp: Mapped[datetime] = mapped_column(primary_key=True)
    # NULL is "no data" (imported as an empty cell or NaN).
    value: Mapped[float | None] = mapped_column(sa.Double)


ALARM_OPERATORS = (">", ">=", "<", "<=", "==", "!=")


class AlarmDefinitionRow(Base):
    __tablename__ = "alarm_definitions"
    __table_args__ = (
        sa.CheckConstraint(
            "operator IN (" + ", ".join(f"'{op}'" for op in ALARM_OPERATORS) + ")",
            name="operator_known",
        ),
        sa.CheckConstraint("min_duration_seconds >= 0", name="min_duration_not_negative"),
    )

    # The manufacturer's alarm id, not generated here.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(200))
    feature_id: Mapped[int] = mapped_column(sa.ForeignKey("features.id"))
    operator: Mapped[str] = mapped_column(sa.String(2))
    threshold: Mapped[float] = mapped_column(sa.Double)
    clear_threshold: Mapped[float | None] = mapped_column(sa.Double)
    min_duration_seconds: Mapped[int] = mapped_column(server_default="0")


class AlarmOccurrenceRow(Base):
    __tablename__ = "alarm_occurrences"
    __table_args__ = (
        sa.CheckConstraint("end_time > start_time", name="end_after_start"),
        # One occurrence per (object, alarm, start), whoever computed it; replacing a period's
        # occurrences looks them up by this key too.
        sa.UniqueConstraint("object_id", "alarm_id", "start_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    object_id: Mapped[int] = mapped_column(sa.ForeignKey("objects.id"))
    alarm_id: Mapped[int] = mapped_column(sa.ForeignKey("alarm_definitions.id"))
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    peak_value: Mapped[float | None] = mapped_column(sa.Double)
    step_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("job_steps.id", ondelete="SET NULL"), index=True
    )
    # Still active at the last sample there was: a later calculation closes or extends it.
    is_open: Mapped[bool] = mapped_column(server_default=sa.false())


def table_of(model: type[Base]) -> sa.Table:
    """The model's Core table, typed as one (Core statements are the hot path here)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table
