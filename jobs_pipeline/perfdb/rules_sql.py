"""The transition tables of `states.py` rendered as trigger SQL, so that every statement (the
application's or a frontend's plain SQL) goes through the same rules.

Who acts is the `actor` column set in the statement itself (`run:<id>`, `sensor:<name>`,
`reconciler:<name>`, anything else acts as a user); the triggers read it, write the history row
and clear it again. PostgreSQL: one PL/pgSQL function per table, system kinds also need
membership of `jobs_pipeline_worker`. SQLite: `RAISE(ABORT, ...)` triggers, which can only raise
a fixed message, so there is one per state a move starts from; an AFTER trigger writes the
history and the side effects (SQLite's BEFORE triggers cannot change the row).
"""

from __future__ import annotations

from jobs_pipeline.perfdb.engine import REFUSAL_PREFIX
from jobs_pipeline.perfdb.states import (
    JOB_TRANSITIONS,
    STEP_TRANSITIONS,
    Actor,
    JobState,
    Transitions,
)

WORKER_ROLE = "jobs_pipeline_worker"
FRONTEND_ROLE = "jobs_pipeline_frontend"
# SQLite only: the value an AFTER trigger's own updates carry, so that the rules skip them.
_INTERNAL = "jobs_pipeline:internal"

SYSTEM_KINDS = (Actor.RUN, Actor.SENSOR, Actor.RECONCILER)

C, Q, R, D, F = (int(state) for state in JobState)
_SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


def actor_kind_sql(column: str) -> str:
    """The `Actor` kind (as its value) named by an actor column; NULL or unknown is a user."""
    cases = " ".join(
        f"WHEN substr({column}, 1, {len(kind.value) + 1}) = '{kind.value}:' THEN '{kind.value}'"
        for kind in SYSTEM_KINDS
    )
    return f"(CASE {cases} ELSE '{Actor.USER.value}' END)"


def _kinds(kinds: frozenset[Actor]) -> str:
    return ", ".join(f"'{kind.value}'" for kind in sorted(kinds, key=lambda kind: kind.value))


def _allowed_from(
    table: Transitions, source: JobState | None, kind: str, *, user_only_when: str = ""
) -> str:
    """SQL that is true when `NEW.state_id` is a move the table allows from `source` for the
    actor kind `kind`. `user_only_when` further restricts the moves a user may make."""
    terms = []
    for (frm, to), who in sorted(table.items(), key=lambda item: (item[0][0] or 0, item[0][1])):
        if frm != source:
            continue
        system = who - {Actor.USER}
        if system:
            terms.append(f"(NEW.state_id = {int(to)} AND {kind} IN ({_kinds(system)}))")
        if Actor.USER in who:
            extra = f" AND {user_only_when}" if user_only_when else ""
            terms.append(f"(NEW.state_id = {int(to)} AND {kind} = 'user'{extra})")
    return "(" + (" OR ".join(terms) or "FALSE") + ")"


def _allowed_moves(table: Transitions, *, with_same_state: bool) -> str:
    """SQL true when (OLD.state_id, NEW.state_id) is allowed for the kind in `kind`."""
    sources = sorted({frm for frm, _ in table if frm is not None})
    parts = []
    for source in sources:
        terms = [
            f"(NEW.state_id = {int(to)} AND kind IN ({_kinds(who)}))"
            for (frm, to), who in table.items()
            if frm == source and (with_same_state or to != source)
        ]
        if terms:
            parts.append(f"(OLD.state_id = {int(source)} AND ({' OR '.join(terms)}))")
    return "(" + " OR ".join(parts) + ")"


def _label_sql(column: str) -> str:
    cases = " ".join(f"WHEN {int(state)} THEN '{state.label}'" for state in JobState)
    return f"(CASE {column} {cases} END)"


def moves_from(table: Transitions, source: JobState | None) -> str:
    """What the table allows from `source`, for people: `Queued (by user), Running (by run)`."""
    moves = [
        f"{to.label} (by {' or '.join(sorted(kind.value for kind in who))})"
        for (frm, to), who in table.items()
        if frm == source and to != source
    ]
    return ", ".join(moves) or "nothing"


# What a frontend may do instead, by the state a refused job move started from.
_JOB_HINTS = {
    JobState.CREATED: "a Created job can be queued, edited, canceled or deleted",
    JobState.QUEUED: "a Queued job can only be canceled (set cancel_requested) or deleted",
    JobState.RUNNING: "a Running job can only be canceled: set cancel_requested",
    JobState.FINISHED: "a Finished job can be queued again (recompute), edited or deleted",
    JobState.FAILED: "a Failed job can be queued again, edited or deleted",
}


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_raise(message: str, *args: str) -> str:
    quoted = message.replace("'", "''")
    extra = "".join(f", {arg}" for arg in args)
    return f"RAISE EXCEPTION '{REFUSAL_PREFIX} {quoted}'{extra} USING ERRCODE = 'check_violation';"


def _pg_hint_sql() -> str:
    cases = " ".join(
        f"WHEN {int(state)} THEN '{hint} (allowed moves: {moves_from(JOB_TRANSITIONS, state)})'"
        for state, hint in _JOB_HINTS.items()
    )
    return f"(CASE OLD.state_id {cases} END)"


def _pg_job_function() -> str:
    insert_allowed = _allowed_from(JOB_TRANSITIONS, None, "kind")
    return f"""
CREATE FUNCTION jobs_pipeline_job_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who text;
    kind text;
BEGIN
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
    END IF;
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
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT {insert_allowed} THEN
            {
        _pg_raise(
            "a new job is inserted Created or Queued by a user, not % by %",
            _label_sql("NEW.state_id"),
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
    NEW.actor := NULL;
    IF NEW.state_id IS DISTINCT FROM OLD.state_id THEN
        IF NOT {_allowed_moves(JOB_TRANSITIONS, with_same_state=False)} THEN
            {
        _pg_raise(
            "job % is %: % may not move it to % (%)",
            "OLD.id",
            _label_sql("OLD.state_id"),
            "who",
            _label_sql("NEW.state_id"),
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
    END IF;
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
            _label_sql("OLD.state_id"),
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
    END IF;
    RETURN NEW;
END $$"""


def _pg_step_function() -> str:
    insert_allowed = _allowed_from(STEP_TRANSITIONS, None, "kind")
    return f"""
CREATE FUNCTION jobs_pipeline_step_rules() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    who text;
    kind text;
BEGIN
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
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NOT {insert_allowed} THEN
            {
        _pg_raise(
            "a new step of job % is inserted Created, not %",
            "NEW.job_id",
            _label_sql("NEW.state_id"),
        )
    }
        END IF;
        NEW.created := now();
        NEW.last_state_change := now();
        NEW.actor := left(who, 200);
        RETURN NEW;  -- the statement trigger writes the history and clears actor
    END IF;
    NEW.actor := NULL;
    IF NOT {_allowed_moves(STEP_TRANSITIONS, with_same_state=True)} THEN
        {
        _pg_raise(
            "step % of job % is %: % may not move it to %",
            "OLD.id",
            "OLD.job_id",
            _label_sql("OLD.state_id"),
            "who",
            _label_sql("NEW.state_id"),
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
                                 NEW.comment);
    RETURN NEW;
END $$"""


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


# --- SQLite ----------------------------------------------------------------------------------

# An update made by the AFTER triggers below (it sets the marker, or clears an actor): the
# rules skip it. At rest actor is always NULL, so a statement cannot look like one by accident.
_SQLITE_INTERNAL = f"(NEW.actor IS '{_INTERNAL}' OR (OLD.actor IS NOT NULL AND NEW.actor IS NULL))"


def _sqlite_raise(message: str) -> str:
    quoted = f"{REFUSAL_PREFIX} {message}".replace("'", "''")
    return f"SELECT RAISE(ABORT, '{quoted}');"


def _sqlite_trigger(name: str, when: str, body: str) -> str:
    return f"CREATE TRIGGER {name} {when} BEGIN {body} END"


def _sqlite_clear_actor(table: str) -> str:
    """The side-effect update's actor: the marker when the statement named nobody (then one
    more update clears it), else NULL."""
    return f"UPDATE {table} SET actor = NULL WHERE id = NEW.id AND actor = '{_INTERNAL}';"


def sqlite_statements() -> list[str]:
    now = _SQLITE_NOW
    kind = actor_kind_sql("NEW.actor")
    who = "coalesce(NEW.actor, 'sql')"
    marker = f"CASE WHEN NEW.actor IS NULL THEN '{_INTERNAL}' END"
    history = (
        "INSERT INTO job_state_history "
        "(job_id, step_id, from_state_id, to_state_id, actor, comment, changed_at) "
    )
    statements = [
        _sqlite_trigger(
            "jobs_pipeline_job_insert",
            "BEFORE INSERT ON job_instances WHEN NOT "
            + _allowed_from(JOB_TRANSITIONS, None, kind)
            + " OR NEW.run_id IS NOT NULL OR NEW.heartbeat IS NOT NULL"
            " OR NEW.started IS NOT NULL OR NEW.finished IS NOT NULL",
            _sqlite_raise(
                "a new job is inserted Created or Queued by a user, with no run_id, heartbeat, "
                "started or finished"
            ),
        ),
        _sqlite_trigger(
            "jobs_pipeline_job_inserted",
            "AFTER INSERT ON job_instances",
            f"UPDATE job_instances SET created = {now}, last_state_change = {now}, "
            f"queue_count = CASE WHEN NEW.state_id = {Q} THEN 1 ELSE 0 END, actor = {marker} "
            "WHERE id = NEW.id; "
            + history
            + f"VALUES (NEW.id, NULL, NULL, NEW.state_id, substr({who}, 1, 200), NULL, {now}); "
            + _sqlite_clear_actor("job_instances"),
        ),
        _sqlite_trigger(
            "jobs_pipeline_job_delete",
            f"BEFORE DELETE ON job_instances WHEN OLD.state_id = {R}",
            _sqlite_raise(
                "a Running job cannot be deleted (cancel it first: set cancel_requested)"
            ),
        ),
    ]
    for source, hint in _JOB_HINTS.items():
        allowed = _allowed_from(JOB_TRANSITIONS, source, kind)
        statements.append(
            _sqlite_trigger(
                f"jobs_pipeline_job_from_{source.label.lower()}",
                f"BEFORE UPDATE OF state_id ON job_instances WHEN NOT {_SQLITE_INTERNAL} "
                f"AND OLD.state_id = {int(source)} AND NEW.state_id IS NOT {int(source)} "
                f"AND NOT {allowed}",
                _sqlite_raise(
                    f"this {source.label} job may not be moved so by this actor: {hint} "
                    f"(allowed moves: {moves_from(JOB_TRANSITIONS, source)})"
                ),
            )
        )
    statements += [
        _sqlite_trigger(
            "jobs_pipeline_job_run_id",
            f"BEFORE UPDATE OF state_id ON job_instances WHEN NOT {_SQLITE_INTERNAL} "
            f"AND NEW.state_id = {R} AND OLD.state_id IS NOT {R} AND {kind} = 'run' "
            "AND NEW.run_id IS NULL AND NEW.actor IS NOT 'run:standalone'",
            _sqlite_raise("a run may not make a job Running without a run_id"),
        ),
        _sqlite_trigger(
            "jobs_pipeline_job_user_columns",
            f"BEFORE UPDATE ON job_instances WHEN NOT {_SQLITE_INTERNAL} AND {kind} = 'user' "
            "AND ((NEW.state_id IS OLD.state_id AND (NEW.queue_count IS NOT OLD.queue_count "
            "OR NEW.finished IS NOT OLD.finished OR NEW.comment IS NOT OLD.comment "
            "OR NEW.last_state_change IS NOT OLD.last_state_change)) "
            "OR NEW.run_id IS NOT OLD.run_id OR NEW.heartbeat IS NOT OLD.heartbeat "
            "OR NEW.started IS NOT OLD.started OR NEW.created IS NOT OLD.created "
            "OR NEW.type_id IS NOT OLD.type_id)",
            _sqlite_raise(
                "a user or frontend may change only a job's state, parameters, description "
                "and cancel_requested/cancel_requested_by"
            ),
        ),
        _sqlite_trigger(
            "jobs_pipeline_job_edit",
            f"BEFORE UPDATE OF parameters, description ON job_instances "
            f"WHEN NOT {_SQLITE_INTERNAL} AND {kind} = 'user' AND OLD.state_id IN ({Q}, {R}) "
            "AND (NEW.parameters IS NOT OLD.parameters OR NEW.description IS NOT OLD.description)",
            _sqlite_raise(
                "a Queued or Running job cannot be edited (edit a job while it is Created, "
                "Finished or Failed)"
            ),
        ),
        _sqlite_trigger(
            "jobs_pipeline_job_moved",
            f"AFTER UPDATE ON job_instances WHEN NOT {_SQLITE_INTERNAL}",
            history + f"SELECT NEW.id, NULL, OLD.state_id, NEW.state_id, substr({who}, 1, 200), "
            f"NEW.comment, {now} WHERE NEW.state_id IS NOT OLD.state_id; "
            + history
            + f"SELECT NEW.id, NULL, NEW.state_id, NEW.state_id, substr({who}, 1, 200), "
            f"'cancel requested by ' || coalesce(NEW.cancel_requested_by, {who}), {now} "
            "WHERE NEW.state_id IS OLD.state_id AND NEW.cancel_requested IS NOT NULL "
            "AND OLD.cancel_requested IS NULL; "
            # A Finished job queued again: every step runs again.
            f"UPDATE job_steps SET state_id = {C}, comment = NULL, actor = {who} "
            f"WHERE job_id = NEW.id AND state_id = {D} AND OLD.state_id = {D} "
            f"AND NEW.state_id = {Q}; "
            # New parameters for an ended job: its steps are recreated at the next queue.
            f"DELETE FROM job_steps WHERE job_id = NEW.id AND {kind} = 'user' "
            f"AND NEW.state_id IS OLD.state_id AND OLD.state_id IN ({D}, {F}) "
            "AND NEW.parameters IS NOT OLD.parameters; "
            "UPDATE job_instances SET "
            f"last_state_change = CASE WHEN NEW.state_id IS NOT OLD.state_id THEN {now} "
            "ELSE last_state_change END, "
            f"queue_count = CASE WHEN NEW.state_id = {Q} AND OLD.state_id IS NOT {Q} "
            "THEN OLD.queue_count + 1 ELSE queue_count END, "
            f"comment = CASE WHEN NEW.state_id = {Q} AND OLD.state_id IS NOT {Q} THEN NULL "
            "ELSE comment END, "
            "finished = CASE WHEN NEW.state_id IS OLD.state_id THEN finished "
            f"WHEN NEW.state_id IN ({D}, {F}) THEN {now} "
            f"WHEN NEW.state_id IN ({Q}, {R}) THEN NULL ELSE finished END, "
            f"cancel_requested = CASE WHEN NEW.state_id = {Q} AND OLD.state_id IS NOT {Q} "
            "THEN NULL WHEN NEW.cancel_requested IS NOT NULL AND OLD.cancel_requested IS NULL "
            f"THEN {now} ELSE cancel_requested END, "
            f"cancel_requested_by = CASE WHEN NEW.state_id = {Q} AND OLD.state_id IS NOT {Q} "
            "THEN NULL ELSE cancel_requested_by END, "
            f"heartbeat = CASE WHEN NEW.state_id = {R} AND OLD.state_id IS NOT {R} THEN {now} "
            "ELSE heartbeat END, "
            f"started = CASE WHEN NEW.state_id = {R} AND OLD.state_id IN ({C}, {Q}) THEN {now} "
            "ELSE started END, "
            f"actor = {marker} WHERE id = NEW.id; " + _sqlite_clear_actor("job_instances"),
        ),
        _sqlite_trigger(
            "jobs_pipeline_step_insert",
            "BEFORE INSERT ON job_steps WHEN NOT " + _allowed_from(STEP_TRANSITIONS, None, kind),
            _sqlite_raise(
                "steps are inserted Created by the run that plans their job, not by a user "
                "(queue the job instead)"
            ),
        ),
        _sqlite_trigger(
            "jobs_pipeline_step_inserted",
            "AFTER INSERT ON job_steps",
            f"UPDATE job_steps SET created = {now}, last_state_change = {now}, actor = {marker} "
            "WHERE id = NEW.id; "
            + history
            + f"VALUES (NEW.job_id, NEW.id, NULL, NEW.state_id, substr({who}, 1, 200), NULL, "
            f"{now}); " + _sqlite_clear_actor("job_steps"),
        ),
        _sqlite_trigger(
            "jobs_pipeline_step_delete",
            "BEFORE DELETE ON job_steps WHEN "
            f"(SELECT state_id FROM job_instances WHERE id = OLD.job_id) = {R}",
            _sqlite_raise("a step of a Running job cannot be deleted"),
        ),
    ]
    # A user moves a step only through its job: the recompute of a job queued again.
    job_queued = f"(SELECT state_id FROM job_instances WHERE id = NEW.job_id) = {Q}"
    for source in JobState:
        allowed = _allowed_from(STEP_TRANSITIONS, source, kind, user_only_when=job_queued)
        statements.append(
            _sqlite_trigger(
                f"jobs_pipeline_step_from_{source.label.lower()}",
                f"BEFORE UPDATE ON job_steps WHEN NOT {_SQLITE_INTERNAL} "
                f"AND OLD.state_id = {int(source)} AND NOT {allowed}",
                _sqlite_raise(
                    f"this {source.label} step may not be moved so by this actor: steps belong "
                    "to the run holding their job (queue, requeue or cancel the job instead; "
                    f"allowed moves: {moves_from(STEP_TRANSITIONS, source)})"
                ),
            )
        )
    statements.append(
        _sqlite_trigger(
            "jobs_pipeline_step_moved",
            f"AFTER UPDATE ON job_steps WHEN NOT {_SQLITE_INTERNAL}",
            history
            + f"VALUES (NEW.job_id, NEW.id, OLD.state_id, NEW.state_id, substr({who}, 1, 200), "
            f"CASE WHEN OLD.state_id = {D} AND NEW.state_id = {C} THEN 'recompute' "
            f"ELSE NEW.comment END, {now}); "
            f"UPDATE job_steps SET last_state_change = {now}, "
            f"started = CASE WHEN NEW.state_id = {R} THEN {now} ELSE started END, "
            f"finished = CASE WHEN NEW.state_id = {R} THEN NULL "
            f"WHEN NEW.state_id IN ({D}, {F}) THEN {now} ELSE finished END, "
            f"actor = {marker} WHERE id = NEW.id; " + _sqlite_clear_actor("job_steps"),
        )
    )
    return statements


def sqlite_trigger_names() -> list[str]:
    return [statement.split()[2] for statement in sqlite_statements()]


def postgresql_trigger_names() -> list[str]:
    return [
        "jobs_pipeline_job_rules",
        "jobs_pipeline_job_instances_inserted",
        "jobs_pipeline_step_rules",
        "jobs_pipeline_job_steps_inserted",
    ]
