"""The database's rules on PostgreSQL: one PL/pgSQL function per table, run as the caller (its
role decides whether it may act as a run), and helpers that write for it."""

from __future__ import annotations

from jobs_pipeline.perfdb.engine import REFUSAL_PREFIX
from jobs_pipeline.perfdb.rules_sql import (
    FRONTEND_ROLE,
    JOB_HINTS,
    WORKER_ROLE,
    C,
    D,
    F,
    Q,
    R,
    actor_kind_sql,
    allowed_from_sql,
    allowed_moves_sql,
    label_sql,
    moves_from,
)
from jobs_pipeline.perfdb.states import JOB_TRANSITIONS, STEP_TRANSITIONS


def _pg_raise(message: str, *args: str) -> str:
    quoted = message.replace("'", "''")
    extra = "".join(f", {arg}" for arg in args)
    return f"RAISE EXCEPTION '{REFUSAL_PREFIX} {quoted}'{extra} USING ERRCODE = 'check_violation';"


def _pg_hint_sql() -> str:
    cases = " ".join(
        f"WHEN {int(state)} THEN '{hint} (allowed moves: {moves_from(JOB_TRANSITIONS, state)})'"
        for state, hint in JOB_HINTS.items()
    )
    return f"(CASE OLD.state_id {cases} END)"


_PG_DECLARE = """
DECLARE
    who text;
    kind text;
BEGIN"""


def _pg_job_function() -> str:
    """The job rules, in the order the function runs: a delete, the actor, an insert, a move to
    another state, then what a user may change without a move."""
    return (
        "\nCREATE FUNCTION jobs_pipeline_job_rules() RETURNS trigger LANGUAGE plpgsql AS $$"
        + _PG_DECLARE
        + _pg_job_delete()
        + _pg_job_actor()
        + _pg_job_insert()
        + _pg_job_move()
        + _pg_job_edit()
        + "\n    RETURN NEW;\nEND $$"
    )


def _pg_job_delete() -> str:
    return f"""
    IF TG_OP = 'DELETE' THEN
        IF OLD.state_id = {R} THEN
            {
        _pg_raise(
            "job % is Running: it cannot be deleted (cancel it first: set cancel_requested)",
            "OLD.id",
        )
    }
        END IF;
        RETURN OLD;
    END IF;"""


def _pg_job_actor() -> str:
    """Who writes, and whether its role lets it act as a run, sensor or reconciler."""
    return f"""
    IF pg_trigger_depth() > 1 THEN
        RETURN NEW;  -- written by these rules themselves (clearing actor, a cascade)
    END IF;
    who := coalesce(NEW.actor, 'sql:' || current_user);
    kind := {actor_kind_sql("NEW.actor")};
    IF kind <> 'user' AND NOT pg_has_role(current_user, '{WORKER_ROLE}', 'MEMBER') THEN
        {
        _pg_raise(
            "job %: % acts as %, which needs membership of "
            + WORKER_ROLE
            + " (a frontend leaves actor empty or names itself, e.g. web:ana)",
            "NEW.id",
            "who",
            "kind",
        )
    }
    END IF;"""


def _pg_job_insert() -> str:
    insert_allowed = allowed_from_sql(JOB_TRANSITIONS, None, "kind")
    return f"""
    IF TG_OP = 'INSERT' THEN
        IF NOT {insert_allowed} THEN
            {
        _pg_raise(
            "a new job is inserted Created or Queued by a user, not % by %",
            label_sql("NEW.state_id"),
            "who",
        )
    }
        END IF;
        IF NEW.run_id IS NOT NULL OR NEW.heartbeat IS NOT NULL OR NEW.started IS NOT NULL
                OR NEW.finished IS NOT NULL THEN
            {
        _pg_raise("a new job has no run_id, heartbeat, started or finished (% gave one)", "who")
    }
        END IF;
        NEW.created := now();
        NEW.last_state_change := now();
        NEW.queue_count := CASE WHEN NEW.state_id = {Q} THEN 1 ELSE 0 END;
        NEW.actor := left(who, 200);
        RETURN NEW;  -- the statement trigger writes the history and clears actor
    END IF;
    NEW.actor := NULL;"""


def _pg_job_move() -> str:
    """A move to another state: allowed by the transition table, with no other column forged,
    and the columns that go with the new state."""
    return f"""
    IF NEW.state_id IS DISTINCT FROM OLD.state_id THEN
        IF NOT {allowed_moves_sql(JOB_TRANSITIONS, with_same_state=False)} THEN
            {
        _pg_raise(
            "job % is %: % may not move it to % (%)",
            "OLD.id",
            label_sql("OLD.state_id"),
            "who",
            label_sql("NEW.state_id"),
            _pg_hint_sql(),
        )
    }
        END IF;
        IF kind = 'user' AND (NEW.run_id, NEW.heartbeat, NEW.started, NEW.created, NEW.type_id)
                IS DISTINCT FROM (OLD.run_id, OLD.heartbeat, OLD.started, OLD.created,
                                  OLD.type_id) THEN
            {
        _pg_raise(
            "job %: % may change only its state, parameters, description, comment "
            "and cancel request",
            "OLD.id",
            "who",
        )
    }
        END IF;
        IF NEW.state_id = {R} AND kind = 'run' AND NEW.run_id IS NULL
                AND who <> 'run:standalone' THEN
            {_pg_raise("job %: % may not make it Running without a run_id", "OLD.id", "who")}
        END IF;
        NEW.last_state_change := now();
        PERFORM jobs_pipeline_record(OLD.id, NULL, OLD.state_id, NEW.state_id, who, NEW.comment);
        IF NEW.state_id = {Q} THEN
            NEW.queue_count := OLD.queue_count + 1;
            NEW.comment := NULL;
            NEW.finished := NULL;
            NEW.cancel_requested := NULL;
            NEW.cancel_requested_by := NULL;
            IF OLD.state_id = {D} THEN
                PERFORM jobs_pipeline_recompute(OLD.id, who);
            END IF;
        ELSIF NEW.state_id = {R} THEN
            NEW.heartbeat := now();
            NEW.finished := NULL;
            IF OLD.state_id IN ({C}, {Q}) THEN
                NEW.started := now();
            END IF;
        ELSIF NEW.state_id IN ({D}, {F}) THEN
            NEW.finished := now();
        END IF;
        RETURN NEW;
    END IF;"""


def _pg_job_edit() -> str:
    """No move: what a user may change (parameters and description of a job not Queued or
    Running, a cancel request) and the history row of a cancel request."""
    return f"""
    IF kind = 'user' THEN
        IF (NEW.run_id, NEW.queue_count, NEW.heartbeat, NEW.started, NEW.finished, NEW.created,
            NEW.type_id, NEW.comment, NEW.last_state_change)
                IS DISTINCT FROM (OLD.run_id, OLD.queue_count, OLD.heartbeat, OLD.started,
                                  OLD.finished, OLD.created, OLD.type_id, OLD.comment,
                                  OLD.last_state_change) THEN
            {
        _pg_raise(
            "job %: % may change only its state, parameters, description and "
            "cancel_requested/cancel_requested_by",
            "OLD.id",
            "who",
        )
    }
        END IF;
        IF (NEW.parameters, NEW.description) IS DISTINCT FROM (OLD.parameters, OLD.description)
        THEN
            IF OLD.state_id IN ({Q}, {R}) THEN
                {
        _pg_raise(
            "job % is %: % may not edit it (edit a job while it is Created, Finished or Failed)",
            "OLD.id",
            label_sql("OLD.state_id"),
            "who",
        )
    }
            END IF;
            IF NEW.parameters IS DISTINCT FROM OLD.parameters AND OLD.state_id IN ({D}, {F}) THEN
                PERFORM jobs_pipeline_drop_steps(OLD.id);  -- recreated at the next queue
            END IF;
        END IF;
    END IF;
    IF NEW.cancel_requested IS NOT NULL AND OLD.cancel_requested IS NULL THEN
        NEW.cancel_requested := now();
        PERFORM jobs_pipeline_record(
            OLD.id, NULL, OLD.state_id, OLD.state_id, who,
            'cancel requested by ' || coalesce(NEW.cancel_requested_by, who));
    END IF;"""


def _pg_step_function() -> str:
    """The step rules: the rules' own writes pass, a delete is refused, then the actor (only a
    run writes steps), an insert, a move."""
    return (
        "\nCREATE FUNCTION jobs_pipeline_step_rules() RETURNS trigger LANGUAGE plpgsql AS $$"
        + _PG_DECLARE
        + _pg_step_actor()
        + _pg_step_insert()
        + _pg_step_move()
        + "\n    RETURN NEW;\nEND $$"
    )


def _pg_step_actor() -> str:
    return f"""
    IF pg_trigger_depth() > 1 THEN
        -- these rules' own writes: a job's recompute, a job's delete, clearing actor
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        {
        _pg_raise(
            "step % of job %: steps go with their job (delete the job, or change its "
            "parameters once it has ended)",
            "OLD.id",
            "OLD.job_id",
        )
    }
    END IF;
    who := coalesce(NEW.actor, 'sql:' || current_user);
    kind := {actor_kind_sql("NEW.actor")};
    IF kind = 'user' THEN
        {
        _pg_raise(
            "step % of job %: % may not write steps: they belong to the run holding the "
            "job (queue, requeue or cancel the job instead)",
            "NEW.id",
            "NEW.job_id",
            "who",
        )
    }
    END IF;
    IF NOT pg_has_role(current_user, '{WORKER_ROLE}', 'MEMBER') THEN
        {
        _pg_raise(
            "step % of job %: % acts as %, which needs membership of " + WORKER_ROLE,
            "NEW.id",
            "NEW.job_id",
            "who",
            "kind",
        )
    }
    END IF;"""


def _pg_step_insert() -> str:
    insert_allowed = allowed_from_sql(STEP_TRANSITIONS, None, "kind")
    return f"""
    IF TG_OP = 'INSERT' THEN
        IF NOT {insert_allowed} THEN
            {
        _pg_raise(
            "a new step of job % is inserted Created, not %",
            "NEW.job_id",
            label_sql("NEW.state_id"),
        )
    }
        END IF;
        NEW.created := now();
        NEW.last_state_change := now();
        NEW.actor := left(who, 200);
        RETURN NEW;  -- the statement trigger writes the history and clears actor
    END IF;
    NEW.actor := NULL;"""


def _pg_step_move() -> str:
    return f"""
    IF NOT {allowed_moves_sql(STEP_TRANSITIONS, with_same_state=True)} THEN
        {
        _pg_raise(
            "step % of job % is %: % may not move it to %",
            "OLD.id",
            "OLD.job_id",
            label_sql("OLD.state_id"),
            "who",
            label_sql("NEW.state_id"),
        )
    }
    END IF;
    NEW.last_state_change := now();
    IF NEW.state_id = {R} THEN
        NEW.started := now();
        NEW.finished := NULL;
    ELSIF NEW.state_id IN ({D}, {F}) THEN
        NEW.finished := now();
    END IF;
    PERFORM jobs_pipeline_record(OLD.job_id, OLD.id, OLD.state_id, NEW.state_id, who,
                                 NEW.comment);"""


def _pg_inserted_function(table: str, job_id: str, step_id: str) -> str:
    return f"""
CREATE FUNCTION jobs_pipeline_{table}_inserted() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO job_state_history
        (job_id, step_id, from_state_id, to_state_id, actor, comment, changed_at)
        SELECT {job_id}, {step_id}, NULL, state_id, actor, NULL, now()
        FROM inserted ORDER BY id;
    UPDATE {table} SET actor = NULL
        WHERE id IN (SELECT id FROM inserted WHERE actor IS NOT NULL);
    RETURN NULL;
END $$"""


# The writes the rules make on behalf of a statement (history rows, a recompute, dropping the
# steps of an edited job) run with the rights of the migration's owner: a frontend role needs
# privileges on `job_instances` only. The checks themselves run as the caller (its role
# decides what it may do).
_PG_DEFINER = "SECURITY DEFINER SET search_path FROM CURRENT"
_PG_HELPERS = [
    f"""
CREATE FUNCTION jobs_pipeline_record(
    job integer, step integer, from_state integer, to_state integer, who text, note text
) RETURNS void LANGUAGE sql {_PG_DEFINER} AS $$
    INSERT INTO job_state_history
        (job_id, step_id, from_state_id, to_state_id, actor, comment, changed_at)
    VALUES (job, step, from_state, to_state, left(who, 200),
            CASE WHEN from_state = {D} AND to_state = {C} THEN 'recompute' ELSE note END, now())
$$""",
    f"""
CREATE FUNCTION jobs_pipeline_recompute(job integer, who text) RETURNS void
LANGUAGE sql {_PG_DEFINER} AS $$
    WITH reset AS (
        UPDATE job_steps SET state_id = {C}, comment = NULL, last_state_change = now()
        WHERE job_id = job AND state_id = {D} RETURNING id
    )
    INSERT INTO job_state_history
        (job_id, step_id, from_state_id, to_state_id, actor, comment, changed_at)
    SELECT job, id, {D}, {C}, left(who, 200), 'recompute', now() FROM reset
$$""",
    f"""
CREATE FUNCTION jobs_pipeline_drop_steps(job integer) RETURNS void
LANGUAGE sql {_PG_DEFINER} AS $$
    DELETE FROM job_steps WHERE job_id = job
$$""",
]
_PG_HELPER_SIGNATURES = (
    "jobs_pipeline_record(integer, integer, integer, integer, text, text)",
    "jobs_pipeline_recompute(integer, text)",
    "jobs_pipeline_drop_steps(integer)",
)


def postgresql_statements() -> list[str]:
    statements = [
        *_PG_HELPERS,
        _pg_job_function(),
        _pg_step_function(),
        _pg_inserted_function("job_instances", "id", "NULL::integer"),
        _pg_inserted_function("job_steps", "job_id", "id"),
    ]
    for table, rules in (("job_instances", "job"), ("job_steps", "step")):
        statements += [
            f"CREATE TRIGGER jobs_pipeline_{rules}_rules BEFORE INSERT OR UPDATE OR DELETE "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION jobs_pipeline_{rules}_rules()",
            f"CREATE TRIGGER jobs_pipeline_{table}_inserted AFTER INSERT ON {table} "
            f"REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT "
            f"EXECUTE FUNCTION jobs_pipeline_{table}_inserted()",
        ]
    return statements


def postgresql_drop_statements() -> list[str]:
    statements = []
    for table, rules in (("job_instances", "job"), ("job_steps", "step")):
        statements += [
            f"DROP TRIGGER jobs_pipeline_{rules}_rules ON {table}",
            f"DROP TRIGGER jobs_pipeline_{table}_inserted ON {table}",
            f"DROP FUNCTION jobs_pipeline_{rules}_rules()",
            f"DROP FUNCTION jobs_pipeline_{table}_inserted()",
        ]
    return statements + [f"DROP FUNCTION {signature}" for signature in _PG_HELPER_SIGNATURES]


def role_statements() -> list[str]:
    """NOLOGIN roles, cluster-wide: created once, tolerating a concurrent creator."""
    return [
        f"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        for role in (WORKER_ROLE, FRONTEND_ROLE)
    ]


def postgresql_trigger_names() -> list[str]:
    return [
        "jobs_pipeline_job_rules",
        "jobs_pipeline_job_instances_inserted",
        "jobs_pipeline_step_rules",
        "jobs_pipeline_job_steps_inserted",
    ]
