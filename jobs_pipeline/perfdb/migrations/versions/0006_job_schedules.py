"""job_schedules and job_schedule_periods: periodic jobs from rows

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 09:00:00

A schedule row says which job to create for every period (`calc/periods.py`); the ledger of
created periods has the key that makes each period happen once, and keeps it after the job is
deleted.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import jobs_pipeline.perfdb.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_DATETIME = jobs_pipeline.perfdb.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "job_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("parameters", JSON_DOCUMENT, nullable=False),
        sa.Column("every", sa.String(length=20), nullable=False),
        sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False),
        sa.Column("delay_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("catch_up", sa.Integer(), server_default="3", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("first_start", UTC_DATETIME(), nullable=True),
        sa.Column("next_start", UTC_DATETIME(), nullable=True),
        sa.Column("next_due", UTC_DATETIME(), nullable=True),
        sa.CheckConstraint("delay_seconds >= 0", name=op.f("ck_job_schedules_delay_not_negative")),
        sa.CheckConstraint("catch_up >= 0", name=op.f("ck_job_schedules_catch_up_not_negative")),
        sa.ForeignKeyConstraint(
            ["type_id"], ["job_types.id"], name=op.f("fk_job_schedules_type_id_job_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_job_schedules_name")),
    )
    op.create_index("ix_job_schedules_enabled_next_due", "job_schedules", ["enabled", "next_due"])
    op.create_table(
        "job_schedule_periods",
        sa.Column("schedule_id", sa.Integer(), nullable=False),
        sa.Column("period_start", UTC_DATETIME(), nullable=False),
        sa.Column("period_end", UTC_DATETIME(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("created", UTC_DATETIME(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["job_schedules.id"],
            name=op.f("fk_job_schedule_periods_schedule_id_job_schedules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job_instances.id"],
            name=op.f("fk_job_schedule_periods_job_id_job_instances"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint(
            "schedule_id", "period_start", name=op.f("pk_job_schedule_periods")
        ),
    )
    op.create_index(op.f("ix_job_schedule_periods_job_id"), "job_schedule_periods", ["job_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_job_schedule_periods_job_id"), table_name="job_schedule_periods")
    op.drop_table("job_schedule_periods")
    op.drop_index("ix_job_schedules_enabled_next_due", table_name="job_schedules")
    op.drop_table("job_schedules")
