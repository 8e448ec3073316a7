"""Initial schema: job queue, state history and domain tables

Revision ID: 0001
Revises:
Create Date: 2026-11-28 19:54:28.335069
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import jobs_pipeline.perfdb.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "features",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=50), server_default="", nullable=False),
        sa.Column("sampling_period_seconds", sa.Integer(), server_default="600", nullable=False),
        sa.CheckConstraint(
            "sampling_period_seconds > 0", name=op.f("ck_features_sampling_period_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features")),
        sa.UniqueConstraint("name", name=op.f("uq_features_name")),
    )
    op.create_table(
        "job_states",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_states")),
        sa.UniqueConstraint("name", name=op.f("uq_job_states_name")),
    )
    op.create_table(
        "job_types",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "parameters_schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_types")),
        sa.UniqueConstraint("name", name=op.f("uq_job_types_name")),
    )
    op.create_table(
        "objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objects")),
        sa.UniqueConstraint("name", name=op.f("uq_objects_name")),
    )
    op.create_table(
        "alarm_definitions",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("clear_threshold", sa.Double(), nullable=True),
        sa.Column("min_duration_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "operator IN ('>', '>=', '<', '<=', '==', '!=')",
            name=op.f("ck_alarm_definitions_operator_known"),
        ),
        sa.CheckConstraint(
            "min_duration_seconds >= 0", name=op.f("ck_alarm_definitions_min_duration_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name=op.f("fk_alarm_definitions_feature_id_features")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_definitions")),
    )
    op.create_table(
        "feature_values",
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("timestamp", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name=op.f("fk_feature_values_feature_id_features")
        ),
        sa.ForeignKeyConstraint(
            ["object_id"], ["objects.id"], name=op.f("fk_feature_values_object_id_objects")
        ),
        sa.PrimaryKeyConstraint(
            "object_id", "feature_id", "timestamp", name=op.f("pk_feature_values")
        ),
    )
    op.create_table(
        "job_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("started", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=True),
        sa.Column("finished", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=True),
        sa.Column("last_state_change", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("queue_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "queue_count >= 0", name=op.f("ck_job_instances_queue_count_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["state_id"], ["job_states.id"], name=op.f("fk_job_instances_state_id_job_states")
        ),
        sa.ForeignKeyConstraint(
            ["type_id"], ["job_types.id"], name=op.f("fk_job_instances_type_id_job_types")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_instances")),
    )
    op.create_index(
        "ix_job_instances_state_id_id", "job_instances", ["state_id", "id"], unique=False
    )
    op.create_table(
        "job_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=True),
        sa.Column("feature_id", sa.Integer(), nullable=True),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("started", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=True),
        sa.Column("finished", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=True),
        sa.Column("last_state_change", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_job_steps_attempts_not_negative")),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarm_definitions.id"],
            name=op.f("fk_job_steps_alarm_id_alarm_definitions"),
        ),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name=op.f("fk_job_steps_feature_id_features")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job_instances.id"],
            name=op.f("fk_job_steps_job_id_job_instances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["object_id"], ["objects.id"], name=op.f("fk_job_steps_object_id_objects")
        ),
        sa.ForeignKeyConstraint(
            ["state_id"], ["job_states.id"], name=op.f("fk_job_steps_state_id_job_states")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_steps")),
        sa.UniqueConstraint(
            "job_id",
            "object_id",
            "alarm_id",
            "feature_id",
            name=op.f("uq_job_steps_job_id_object_id_alarm_id_feature_id"),
        ),
        sa.UniqueConstraint("job_id", "position", name=op.f("uq_job_steps_job_id_position")),
    )
    op.create_table(
        "alarm_occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("start_time", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("end_time", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.Column("peak_value", sa.Double(), nullable=True),
        sa.Column("step_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "end_time > start_time", name=op.f("ck_alarm_occurrences_end_after_start")
        ),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarm_definitions.id"],
            name=op.f("fk_alarm_occurrences_alarm_id_alarm_definitions"),
        ),
        sa.ForeignKeyConstraint(
            ["object_id"], ["objects.id"], name=op.f("fk_alarm_occurrences_object_id_objects")
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["job_steps.id"],
            name=op.f("fk_alarm_occurrences_step_id_job_steps"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_occurrences")),
    )
    op.create_index(
        "ix_alarm_occurrences_object_alarm_start",
        "alarm_occurrences",
        ["object_id", "alarm_id", "start_time"],
        unique=False,
    )
    op.create_index(
        op.f("ix_alarm_occurrences_step_id"), "alarm_occurrences", ["step_id"], unique=False
    )
    op.create_table(
        "job_state_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=True),
        sa.Column("from_state_id", sa.Integer(), nullable=True),
        sa.Column("to_state_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("changed_at", jobs_pipeline.perfdb.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_state_id"],
            ["job_states.id"],
            name=op.f("fk_job_state_history_from_state_id_job_states"),
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job_instances.id"],
            name=op.f("fk_job_state_history_job_id_job_instances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["job_steps.id"],
            name=op.f("fk_job_state_history_step_id_job_steps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_state_id"],
            ["job_states.id"],
            name=op.f("fk_job_state_history_to_state_id_job_states"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_state_history")),
    )
    op.create_index(
        op.f("ix_job_state_history_job_id"), "job_state_history", ["job_id"], unique=False
    )
    op.create_index(
        op.f("ix_job_state_history_step_id"), "job_state_history", ["step_id"], unique=False
    )

    # The state ids are fixed: jobs_pipeline.perfdb.states.JobState mirrors them.
    job_states = sa.table("job_states", sa.column("id", sa.Integer), sa.column("name", sa.String))
    op.bulk_insert(
        job_states,
        [
            {"id": 1, "name": "Created"},
            {"id": 2, "name": "Queued"},
            {"id": 3, "name": "Running"},
            {"id": 4, "name": "Finished"},
            {"id": 5, "name": "Failed"},
        ],
    )


def downgrade() -> None:

    op.drop_index(op.f("ix_job_state_history_step_id"), table_name="job_state_history")
    op.drop_index(op.f("ix_job_state_history_job_id"), table_name="job_state_history")
    op.drop_table("job_state_history")
    op.drop_index(op.f("ix_alarm_occurrences_step_id"), table_name="alarm_occurrences")
    op.drop_index("ix_alarm_occurrences_object_alarm_start", table_name="alarm_occurrences")
    op.drop_table("alarm_occurrences")
    op.drop_table("job_steps")
    op.drop_index("ix_job_instances_state_id_id", table_name="job_instances")
    op.drop_table("job_instances")
    op.drop_table("feature_values")
    op.drop_table("alarm_definitions")
    op.drop_table("objects")
    op.drop_table("job_types")
    op.drop_table("job_states")
    op.drop_table("features")
