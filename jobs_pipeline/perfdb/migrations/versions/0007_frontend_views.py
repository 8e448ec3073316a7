"""Views a frontend reads its pages from; on PostgreSQL, history written only by the triggers

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 09:00:00

`job_overview` gives one row per job with its type and state names and its steps by state, so a
jobs page is one query; `job_step_overview` does the same for a job's steps. Each count is a
lookup in `ix_job_steps_job_id_state_id`, so a page of jobs costs the same however many steps
the table holds.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _steps_in(state_id: int | None) -> str:
    state = "" if state_id is None else f" AND st.state_id = {state_id}"
    return f"(SELECT count(*) FROM job_steps st WHERE st.job_id = j.id{state})"


JOB_OVERVIEW = f"""
CREATE VIEW job_overview AS
SELECT o.*,
       CASE WHEN o.steps_total = 0 THEN 0.0
            ELSE round(100.0 * (o.steps_finished + o.steps_failed) / o.steps_total, 1)
       END AS progress_percent
FROM (
    SELECT j.id AS job_id,
           t.name AS job_type,
           s.name AS state,
           j.description,
           j.comment,
           j.parameters,
           j.created,
           j.started,
           j.finished,
           j.last_state_change,
           j.queue_count,
           j.run_id,
           j.cancel_requested,
           j.cancel_requested_by,
           {_steps_in(None)} AS steps_total,
           {_steps_in(1)} AS steps_created,
           {_steps_in(3)} AS steps_running,
           {_steps_in(4)} AS steps_finished,
           {_steps_in(5)} AS steps_failed
    FROM job_instances j
    JOIN job_types t ON t.id = j.type_id
    JOIN job_states s ON s.id = j.state_id
) o
"""

JOB_STEP_OVERVIEW = """
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
JOIN objects ob ON ob.id = st.object_id
JOIN job_states s ON s.id = st.state_id
LEFT JOIN alarm_definitions al ON al.id = st.alarm_id
LEFT JOIN features fe ON fe.id = st.feature_id
"""

# History rows are written by the state triggers (nested, so pg_trigger_depth() > 1); a
# statement of its own may add one only as a member of the worker role.
HISTORY_GUARD_FUNCTION = """
CREATE FUNCTION jobs_pipeline_history_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jobs_pipeline_worker')
       AND pg_has_role(current_user, 'jobs_pipeline_worker', 'MEMBER') THEN
        RETURN NEW;
    END IF;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'jobs_pipeline: job %: % may not write job_state_history: the database '
        'writes a history row for every state change by itself', NEW.job_id, current_user
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""

HISTORY_GUARD_TRIGGER = """
CREATE TRIGGER job_state_history_guard BEFORE INSERT ON job_state_history
FOR EACH ROW EXECUTE FUNCTION jobs_pipeline_history_guard()
"""


# SQLite enforces foreign keys only where a connection turned them on: a frontend's client that
# did not still removes a deleted job's steps and history, and unlinks the step's results.
SQLITE_DELETE_CHILDREN = """
CREATE TRIGGER job_instances_delete_children AFTER DELETE ON job_instances
FOR EACH ROW BEGIN
    UPDATE alarm_occurrences SET step_id = NULL
    WHERE step_id IN (SELECT id FROM job_steps WHERE job_id = OLD.id);
    DELETE FROM job_state_history WHERE job_id = OLD.id;
    DELETE FROM job_steps WHERE job_id = OLD.id;
END
"""


def upgrade() -> None:
    op.execute(JOB_OVERVIEW)
    op.execute(JOB_STEP_OVERVIEW)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(HISTORY_GUARD_FUNCTION)
        op.execute(HISTORY_GUARD_TRIGGER)
    else:
        op.execute(SQLITE_DELETE_CHILDREN)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER job_state_history_guard ON job_state_history")
        op.execute("DROP FUNCTION jobs_pipeline_history_guard()")
    else:
        op.execute("DROP TRIGGER job_instances_delete_children")
    op.execute("DROP VIEW job_step_overview")
    op.execute("DROP VIEW job_overview")
