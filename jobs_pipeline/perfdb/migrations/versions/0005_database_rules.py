"""the database keeps the rules: actor columns, transition triggers, worker and frontend roles

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 09:00:00

A frontend writes rows with plain SQL, so the state machine of `perfdb/states.py` is enforced
by triggers rendered from its transition tables (`perfdb/rules_*.py`): every statement names
its actor in the `actor` column (or acts as the frontend), the triggers refuse moves the tables
do not allow, write the history row, and stamp the timestamps with the database clock.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from jobs_pipeline.perfdb import rules_postgresql, rules_sqlite

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("job_instances", "job_steps")
# The database fills these in (a frontend's INSERT need not); the triggers stamp them again.
STAMPED = ("created", "last_state_change")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("actor", sa.String(200), nullable=True))
            for column in STAMPED:
                batch.alter_column(
                    column, server_default=sa.text("CURRENT_TIMESTAMP"), existing_nullable=False
                )
    if postgresql:
        for statement in (
            rules_postgresql.role_statements() + rules_postgresql.postgresql_statements()
        ):
            op.execute(statement)
    else:
        for statement in rules_sqlite.sqlite_statements():
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for statement in rules_postgresql.postgresql_drop_statements():
            op.execute(statement)
    else:
        for name in rules_sqlite.sqlite_trigger_names():
            op.execute(f"DROP TRIGGER {name}")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("actor")
            for column in STAMPED:
                batch.alter_column(column, server_default=None, existing_nullable=False)
