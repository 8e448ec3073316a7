"""derived_features, derived_feature_inputs, job_step_dependencies; steps without an object

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 09:30:00

A derived feature is a `features` row with an expression over other features; its inputs are
rows of their own so that cycles and lineage are one query away. A job step may depend on steps
of the same job: it starts only once they Finished. A step need not be about an object (a
Data Import step is about a file): `job_steps.object_id` may be NULL.

SQLite cannot drop a NOT NULL constraint with ALTER TABLE, and rebuilding `job_steps` would
cascade-delete its history (foreign keys are on and cannot be turned off inside the migration's
transaction) and drop its triggers; the table's definition is edited in place instead, the
procedure SQLite documents for removing NOT NULL constraints (lang_altertable.html, section 7).
The triggers of 0005 and the views of 0007 are schema entries of their own and stay as they are.
`job_step_overview` outer-joins objects from here on, so that it shows steps without an object.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


STEP_OVERVIEW_OBJECTS_INNER = "JOIN objects ob ON ob.id = st.object_id"
STEP_OVERVIEW_OBJECTS_OUTER = "LEFT JOIN objects ob ON ob.id = st.object_id"
STEP_OVERVIEW = """
CREATE VIEW job_step_overview AS
SELECT st.id AS step_id,
       st.job_id,
       st.position,
       ob.name AS object,
       st.alarm_id,
       al.name AS alarm,
       fe.name AS feature,
       s.name AS state,
       st.comment,
       st.attempts,
       st.run_id,
       st.started,
       st.finished,
       st.last_state_change,
       st.details
FROM job_steps st
{objects}
JOIN job_states s ON s.id = st.state_id
LEFT JOIN alarm_definitions al ON al.id = st.alarm_id
LEFT JOIN features fe ON fe.id = st.feature_id
"""


def _step_overview(objects: str) -> None:
    op.execute("DROP VIEW job_step_overview")
    op.execute(STEP_OVERVIEW.format(objects=objects))


STEP_OBJECT_NOT_NULL = "object_id INTEGER NOT NULL,"
STEP_OBJECT_NULL = "object_id INTEGER,"


def _sqlite_step_object(before: str, after: str) -> None:
    """Rewrites the declaration of `job_steps.object_id` in SQLite's schema table."""
    version = op.get_bind().exec_driver_sql("PRAGMA schema_version").scalar_one()
    op.execute("PRAGMA writable_schema = ON")
    op.execute(
        f"UPDATE sqlite_master SET sql = replace(sql, '{before}', '{after}') "
        "WHERE type = 'table' AND name = 'job_steps'"
    )
    op.execute(f"PRAGMA schema_version = {int(version) + 1}")
    op.execute("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_step_object(STEP_OBJECT_NOT_NULL, STEP_OBJECT_NULL)
    else:
        op.alter_column("job_steps", "object_id", existing_type=sa.Integer(), nullable=True)
    _step_overview(STEP_OVERVIEW_OBJECTS_OUTER)
    op.create_table(
        "derived_features",
        sa.Column("feature_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["features.id"],
            name=op.f("fk_derived_features_feature_id_features"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feature_id", name=op.f("pk_derived_features")),
    )
    op.create_table(
        "derived_feature_inputs",
        sa.Column("feature_id", sa.Integer(), nullable=False),
        sa.Column("input_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feature_id"],
            ["derived_features.feature_id"],
            name=op.f("fk_derived_feature_inputs_feature_id_derived_features"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["input_id"],
            ["features.id"],
            name=op.f("fk_derived_feature_inputs_input_id_features"),
        ),
        sa.PrimaryKeyConstraint("feature_id", "input_id", name=op.f("pk_derived_feature_inputs")),
    )
    op.create_index(
        op.f("ix_derived_feature_inputs_input_id"), "derived_feature_inputs", ["input_id"]
    )
    op.create_table(
        "job_step_dependencies",
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("depends_on_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"],
            ["job_steps.id"],
            name=op.f("fk_job_step_dependencies_step_id_job_steps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_id"],
            ["job_steps.id"],
            name=op.f("fk_job_step_dependencies_depends_on_id_job_steps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_id", "depends_on_id", name=op.f("pk_job_step_dependencies")),
    )
    op.create_index(
        op.f("ix_job_step_dependencies_depends_on_id"), "job_step_dependencies", ["depends_on_id"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_job_step_dependencies_depends_on_id"), table_name="job_step_dependencies"
    )
    op.drop_table("job_step_dependencies")
    op.drop_index(op.f("ix_derived_feature_inputs_input_id"), table_name="derived_feature_inputs")
    op.drop_table("derived_feature_inputs")
    op.drop_table("derived_features")
    _step_overview(STEP_OVERVIEW_OBJECTS_INNER)
    op.execute("DELETE FROM job_steps WHERE object_id IS NULL")
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_step_object(STEP_OBJECT_NULL, STEP_OBJECT_NOT_NULL)
    else:
        op.alter_column("job_steps", "object_id", existing_type=sa.Integer(), nullable=False)
