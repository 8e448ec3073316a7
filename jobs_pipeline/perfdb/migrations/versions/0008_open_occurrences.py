"""alarm_occurrences.is_open: episodes still active at the newest sample

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 08:30:00

An occurrence still active at the last sample available is stored as open, so that a later
calculation knows where it began and closes or extends it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alarm_occurrences") as batch:
        batch.add_column(
            sa.Column("is_open", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("alarm_occurrences") as batch:
        batch.drop_column("is_open")
