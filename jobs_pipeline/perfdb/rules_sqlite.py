"""The database's rules on SQLite: `RAISE(ABORT, ...)` triggers, which can only raise a fixed
message (one trigger per state a move starts from), and AFTER triggers that write the history and
the side effects (SQLite's BEFORE triggers cannot change the row)."""

from __future__ import annotations

from jobs_pipeline.perfdb.engine import REFUSAL_PREFIX
from jobs_pipeline.perfdb.rules_sql import (
    INTERNAL_ACTOR,
    JOB_HINTS,
    SQLITE_NOW,
    C,
    D,
    F,
    Q,
    R,
    actor_kind_sql,
    allowed_from_sql,
    moves_from,
)
from jobs_pipeline.perfdb.states import JOB_TRANSITIONS, STEP_TRANSITIONS, JobState

# An update made by the AFTER triggers below (it sets the marker, or clears an actor): the
# rules skip it. At rest actor is always NULL, so a statement cannot look like one by accident.
_SQLITE_INTERNAL = (
    f"(NEW.actor IS '{INTERNAL_ACTOR}' OR (OLD.actor IS NOT NULL AND NEW.actor IS NULL))"
)


def _sqlite_raise(message: str) -> str:
    quoted = f"{REFUSAL_PREFIX} {message}".replace("'", "''")
    return f"SELECT RAISE(ABORT, '{quoted}');"


def _sqlite_trigger(name: str, when: str, body: str) -> str:
    return f"CREATE TRIGGER {name} {when} BEGIN {body} END"


def _sqlite_clear_actor(table: str) -> str:
    """The side-effect update's actor: the marker when the statement named nobody (then one
    more update clears it), else NULL."""
    return f"UPDATE {table} SET actor = NULL WHERE id = NEW.id AND actor = '{INTERNAL_ACTOR}';"


# The pieces every trigger below shares.
_NOW = SQLITE_NOW
_KIND = actor_kind_sql("NEW.actor")
_WHO = "coalesce(NEW.actor, 'sql')"
_MARKER = f"CASE WHEN NEW.actor IS NULL THEN '{INTERNAL_ACTOR}' END"
_HISTORY = (
    "INSERT INTO job_state_history "
    "(job_id, step_id, from_state_id, to_state_id, actor, comment, changed_at) "
)


def sqlite_statements() -> list[str]:
    return [
        *_job_insert_and_delete(),
        *_job_guards(),
        _job_moved(),
        *_step_insert_and_delete(),
        *_step_guards(),
        _step_moved(),
    ]


def _job_insert_and_delete() -> list[str]:
    now, who = _NOW, _WHO
    return [
        _sqlite_trigger(
            "jobs_pipeline_job_insert",
            "BEFORE INSERT ON job_instances WHEN NOT "
            + allowed_from_sql(JOB_TRANSITIONS, None, _KIND)
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
            f"queue_count = CASE WHEN NEW.state_id = {Q} THEN 1 ELSE 0 END, actor = {_MARKER} "
            "WHERE id = NEW.id; "
            + _HISTORY
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


def _job_guards() -> list[str]:
    """The BEFORE UPDATE triggers of jobs: one per state a move starts from, then the columns
    a run or a user may not write."""
    kind = _KIND
    statements = []
    for source, hint in JOB_HINTS.items():
        allowed = allowed_from_sql(JOB_TRANSITIONS, source, kind)
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
    return [
        *statements,
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
    ]


def _job_moved() -> str:
    """The AFTER UPDATE trigger of jobs: the history rows (a move, a cancel request), the steps
    of a recompute or of new parameters, and the columns that go with the new state."""
    now, kind, who, history = _NOW, _KIND, _WHO, _HISTORY
    return _sqlite_trigger(
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
        f"actor = {_MARKER} WHERE id = NEW.id; " + _sqlite_clear_actor("job_instances"),
    )


def _step_insert_and_delete() -> list[str]:
    now, who = _NOW, _WHO
    return [
        _sqlite_trigger(
            "jobs_pipeline_step_insert",
            "BEFORE INSERT ON job_steps WHEN NOT "
            + allowed_from_sql(STEP_TRANSITIONS, None, _KIND),
            _sqlite_raise(
                "steps are inserted Created by the run that plans their job, not by a user "
                "(queue the job instead)"
            ),
        ),
        _sqlite_trigger(
            "jobs_pipeline_step_inserted",
            "AFTER INSERT ON job_steps",
            f"UPDATE job_steps SET created = {now}, last_state_change = {now}, "
            f"actor = {_MARKER} "
            "WHERE id = NEW.id; "
            + _HISTORY
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


def _step_guards() -> list[str]:
    """One BEFORE UPDATE trigger per state a step's move starts from."""
    # A user moves a step only through its job: the recompute of a job queued again.
    job_queued = f"(SELECT state_id FROM job_instances WHERE id = NEW.job_id) = {Q}"
    statements = []
    for source in JobState:
        allowed = allowed_from_sql(STEP_TRANSITIONS, source, _KIND, user_only_when=job_queued)
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
    return statements


def _step_moved() -> str:
    now, who = _NOW, _WHO
    return _sqlite_trigger(
        "jobs_pipeline_step_moved",
        f"AFTER UPDATE ON job_steps WHEN NOT {_SQLITE_INTERNAL}",
        _HISTORY
        + f"VALUES (NEW.job_id, NEW.id, OLD.state_id, NEW.state_id, substr({who}, 1, 200), "
        f"CASE WHEN OLD.state_id = {D} AND NEW.state_id = {C} THEN 'recompute' "
        f"ELSE NEW.comment END, {now}); "
        f"UPDATE job_steps SET last_state_change = {now}, "
        f"started = CASE WHEN NEW.state_id = {R} THEN {now} ELSE started END, "
        f"finished = CASE WHEN NEW.state_id = {R} THEN NULL "
        f"WHEN NEW.state_id IN ({D}, {F}) THEN {now} ELSE finished END, "
        f"actor = {_MARKER} WHERE id = NEW.id; " + _sqlite_clear_actor("job_steps"),
    )


def sqlite_trigger_names() -> list[str]:
    return [statement.split()[2] for statement in sqlite_statements()]
