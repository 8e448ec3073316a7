"""The transition tables of `states.py` rendered as trigger SQL, so that every statement (the
application's or a frontend's plain SQL) goes through the same rules: what both databases
share; `rules_postgresql.py` and `rules_sqlite.py` build the triggers.

Who acts is the `actor` column set in the statement itself (`run:<id>`, `sensor:<name>`,
`reconciler:<name>`, anything else acts as a user); the triggers read it, write the history row
and clear it again. PostgreSQL: one PL/pgSQL function per table, system kinds also need
membership of `jobs_pipeline_worker`. SQLite: `RAISE(ABORT, ...)` triggers, which can only raise
a fixed message, so there is one per state a move starts from; an AFTER trigger writes the
history and the side effects (SQLite's BEFORE triggers cannot change the row).
"""

from __future__ import annotations

from jobs_pipeline.perfdb.states import (
    Actor,
    JobState,
    Transitions,
)

WORKER_ROLE = "jobs_pipeline_worker"
FRONTEND_ROLE = "jobs_pipeline_frontend"
# SQLite only: the value an AFTER trigger's own updates carry, so that the rules skip them.
INTERNAL_ACTOR = "jobs_pipeline:internal"

SYSTEM_KINDS = (Actor.RUN, Actor.SENSOR, Actor.RECONCILER)

C, Q, R, D, F = (int(state) for state in JobState)
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


def actor_kind_sql(column: str) -> str:
    """The `Actor` kind (as its value) named by an actor column; NULL or unknown is a user."""
    cases = " ".join(
        f"WHEN substr({column}, 1, {len(kind.value) + 1}) = '{kind.value}:' THEN '{kind.value}'"
        for kind in SYSTEM_KINDS
    )
    return f"(CASE {cases} ELSE '{Actor.USER.value}' END)"


def kinds_sql(kinds: frozenset[Actor]) -> str:
    return ", ".join(f"'{kind.value}'" for kind in sorted(kinds, key=lambda kind: kind.value))


def allowed_from_sql(
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
            terms.append(f"(NEW.state_id = {int(to)} AND {kind} IN ({kinds_sql(system)}))")
        if Actor.USER in who:
            extra = f" AND {user_only_when}" if user_only_when else ""
            terms.append(f"(NEW.state_id = {int(to)} AND {kind} = 'user'{extra})")
    return "(" + (" OR ".join(terms) or "FALSE") + ")"


def allowed_moves_sql(table: Transitions, *, with_same_state: bool) -> str:
    """SQL true when (OLD.state_id, NEW.state_id) is allowed for the kind in `kind`."""
    sources = sorted({frm for frm, _ in table if frm is not None})
    parts = []
    for source in sources:
        terms = [
            f"(NEW.state_id = {int(to)} AND kind IN ({kinds_sql(who)}))"
            for (frm, to), who in table.items()
            if frm == source and (with_same_state or to != source)
        ]
        if terms:
            parts.append(f"(OLD.state_id = {int(source)} AND ({' OR '.join(terms)}))")
    return "(" + " OR ".join(parts) + ")"


def label_sql(column: str) -> str:
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
JOB_HINTS = {
    JobState.CREATED: "a Created job can be queued, edited, canceled or deleted",
    JobState.QUEUED: "a Queued job can only be canceled (set cancel_requested) or deleted",
    JobState.RUNNING: "a Running job can only be canceled: set cancel_requested",
    JobState.FINISHED: "a Finished job can be queued again (recompute), edited or deleted",
    JobState.FAILED: "a Failed job can be queued again, edited or deleted",
}
