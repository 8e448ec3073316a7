"""job_steps indexed by (job_id, state_id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 16:00:00

Every finished step asks whether any step of its job is left to run. Without this index the
question walks the job's steps in position order past every finished one, so a job of N steps
cost O(N^2) over its run: a 10,000-step job spent more time asking than calculating.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_steps_job_id_state_id", "job_steps", ["job_id", "state_id"])


def downgrade() -> None:
    op.drop_index("ix_job_steps_job_id_state_id", table_name="job_steps")
