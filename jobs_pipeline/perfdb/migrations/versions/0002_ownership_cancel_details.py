"""Run heartbeats, cancel requests, step details, one occurrence per (object, alarm, start)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import jobs_pipeline.perfdb.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("job_instances") as batch:
        batch.add_column(
            sa.Column("heartbeat", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("cancel_requested", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=True)
        )
        batch.add_column(sa.Column("cancel_requested_by", sa.String(length=200), nullable=True))
        batch.create_index(
            batch.f("ix_job_instances_cancel_requested"), ["cancel_requested"], unique=False
        )
    with op.batch_alter_table("job_steps") as batch:
        batch.add_column(sa.Column("details", JSON_DOCUMENT, nullable=True))
    # Concurrent replacements could leave duplicates before this key existed: keep the newest.
    op.execute(
        "DELETE FROM alarm_occurrences WHERE id NOT IN ("
        "SELECT max(id) FROM alarm_occurrences GROUP BY object_id, alarm_id, start_time)"
    )
    with op.batch_alter_table("alarm_occurrences") as batch:
        batch.drop_index("ix_alarm_occurrences_object_alarm_start")
        batch.create_unique_constraint(
            batch.f("uq_alarm_occurrences_object_id_alarm_id_start_time"),
            ["object_id", "alarm_id", "start_time"],
        )


def downgrade() -> None:
    with op.batch_alter_table("alarm_occurrences") as batch:
        batch.drop_constraint(
            batch.f("uq_alarm_occurrences_object_id_alarm_id_start_time"), type_="unique"
        )
        batch.create_index(
            "ix_alarm_occurrences_object_alarm_start",
            ["object_id", "alarm_id", "start_time"],
            unique=False,
        )
    with op.batch_alter_table("job_steps") as batch:
        batch.drop_column("details")
    with op.batch_alter_table("job_instances") as batch:
        batch.drop_index(batch.f("ix_job_instances_cancel_requested"))
        batch.drop_column("cancel_requested_by")
        batch.drop_column("cancel_requested")
        batch.drop_column("heartbeat")
