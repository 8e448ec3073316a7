"""The database keeps the rules: the triggers rendered from `states.py` allow exactly the moves of
the transition tables, for each kind of actor, whoever writes the SQL."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InvalidTransition
from jobs_pipeline.perfdb.models import JobInstanceRow, JobStepRow, table_of
from jobs_pipeline.perfdb.rules_sql import FRONTEND_ROLE, WORKER_ROLE
from jobs_pipeline.perfdb.states import JOB_TRANSITIONS, STEP_TRANSITIONS, Actor, JobState
from jobs_pipeline_tests.perfdb.queue_jobs import running_job

JOB = table_of(JobInstanceRow)
STEP = table_of(JobStepRow)
RUN_ID = "run-rules"
# What each kind of actor writes to `actor` (the user leaves it empty, like plain SQL).
ACTORS: dict[Actor, str | None] = {
    Actor.USER: None,
    Actor.SENSOR: "sensor:rules",
    Actor.RUN: f"run:{RUN_ID}",
    Actor.RECONCILER: "reconciler:rules",
}
# How a job (or step) reaches each state with allowed moves: (state, actor kind) after insert.
PATHS = {
    JobState.CREATED: [],
    JobState.QUEUED: [(JobState.QUEUED, Actor.USER)],
    JobState.RUNNING: [(JobState.QUEUED, Actor.USER), (JobState.RUNNING, Actor.RUN)],
    JobState.FINISHED: [
        (JobState.QUEUED, Actor.USER),
        (JobState.RUNNING, Actor.RUN),
        (JobState.FINISHED, Actor.RUN),
    ],
    JobState.FAILED: [
        (JobState.QUEUED, Actor.USER),
        (JobState.RUNNING, Actor.RUN),
        (JobState.FAILED, Actor.RUN),
    ],
}
STEP_PATHS = {
    JobState.CREATED: [],
    JobState.QUEUED: None,  # a step is never Queued, nor can it become so
    JobState.RUNNING: [JobState.RUNNING],
    JobState.FINISHED: [JobState.RUNNING, JobState.FINISHED],
    JobState.FAILED: [JobState.RUNNING, JobState.FAILED],
}


@pytest.fixture
def rules_db(perfdb: PerfDB) -> Iterator[tuple[PerfDB, int, int]]:
    """The database with a job type and an object, for rows written with plain SQL."""
    [object_id] = perfdb.catalog.ensure_objects(["RULES-01"]).values()
    with perfdb.engine.begin() as connection:
        type_id = connection.execute(sa.text("SELECT min(id) FROM job_types")).scalar_one()
    yield perfdb, type_id, object_id


def refused(connection: sa.Connection, statement: Any) -> bool:
    """Runs `statement` in a savepoint; True when the rules refused it (nothing written)."""
    try:
        with connection.begin_nested():
            connection.execute(statement)
    except sa.exc.IntegrityError as error:
        assert "jobs_pipeline:" in str(error.orig), error
        return True
    return False


def insert_job(connection: sa.Connection, type_id: int, state: JobState, actor: str | None) -> Any:
    return (
        JOB.insert()
        .values(type_id=type_id, state_id=state, parameters={}, description="", actor=actor)
        .returning(JOB.c.id)
    )


def job_in(connection: sa.Connection, type_id: int, state: JobState) -> int:
    job_id = connection.execute(insert_job(connection, type_id, JobState.CREATED, None)).scalar()
    for step_state, kind in PATHS[state]:
        values: dict[str, Any] = {"state_id": step_state, "actor": ACTORS[kind]}
        if step_state == JobState.RUNNING:
            values["run_id"] = RUN_ID
        connection.execute(JOB.update().where(JOB.c.id == job_id).values(**values))
    assert state_of(connection, JOB, job_id) == state
    return int(job_id)


def state_of(connection: sa.Connection, table: sa.Table, row_id: int) -> JobState:
    return JobState(
        connection.execute(sa.select(table.c.state_id).where(table.c.id == row_id)).scalar_one()
    )


def test_job_triggers_allow_exactly_the_table(rules_db: tuple[PerfDB, int, int]) -> None:
    perfdb, type_id, _ = rules_db
    wrong = []
    with perfdb.engine.begin() as connection:
        for state, kind in itertools.product(JobState, Actor):
            allowed = kind in JOB_TRANSITIONS.get((None, state), frozenset())
            if refused(connection, insert_job(connection, type_id, state, ACTORS[kind])) == allowed:
                wrong.append(("insert", state.label, kind.value, allowed))
        for source, target, kind in itertools.product(JobState, JobState, Actor):
            if source == target:
                continue  # not a move: an edit, a heartbeat, a cancel request
            job_id = job_in(connection, type_id, source)
            allowed = kind in JOB_TRANSITIONS.get((source, target), frozenset())
            values: dict[str, Any] = {"state_id": target, "actor": ACTORS[kind]}
            if target == JobState.RUNNING and kind != Actor.USER:
                values["run_id"] = RUN_ID
            was_refused = refused(
                connection, JOB.update().where(JOB.c.id == job_id).values(**values)
            )
            if was_refused == allowed:
                wrong.append((source.label, target.label, kind.value, allowed))
            assert state_of(connection, JOB, job_id) == (target if allowed else source)
    assert wrong == []


def test_step_triggers_allow_exactly_the_table_for_runs_and_reconcilers(
    rules_db: tuple[PerfDB, int, int],
) -> None:
    perfdb, type_id, object_id = rules_db
    wrong = []
    with perfdb.engine.begin() as connection:
        for state, kind in itertools.product(JobState, Actor):
            job_id = job_in(connection, type_id, JobState.RUNNING)
            allowed = kind in STEP_TRANSITIONS.get((None, state), frozenset())
            insert = STEP.insert().values(
                job_id=job_id, position=0, object_id=object_id, state_id=state, actor=ACTORS[kind]
            )
            if refused(connection, insert) == allowed:
                wrong.append(("insert", state.label, kind.value, allowed))
        for source, target, kind in itertools.product(JobState, JobState, Actor):
            path = STEP_PATHS[source]
            if path is None:
                continue
            job_id = job_in(connection, type_id, JobState.RUNNING)
            step_id = connection.execute(
                STEP.insert()
                .values(job_id=job_id, position=0, object_id=object_id, state_id=JobState.CREATED)
                .values(actor=ACTORS[Actor.RUN])
                .returning(STEP.c.id)
            ).scalar_one()
            for state in path:
                connection.execute(
                    STEP.update()
                    .where(STEP.c.id == step_id)
                    .values(state_id=state, actor=ACTORS[Actor.RUN])
                )
            # A user moves steps only through its job (the recompute of a requeue, below).
            who = STEP_TRANSITIONS.get((source, target), frozenset()) - {Actor.USER}
            allowed = kind in who
            update = STEP.update().where(STEP.c.id == step_id)
            was_refused = refused(connection, update.values(state_id=target, actor=ACTORS[kind]))
            if was_refused == allowed:
                wrong.append((source.label, target.label, kind.value, allowed))
            assert state_of(connection, STEP, step_id) == (target if allowed else source)
    assert wrong == []


def test_a_plain_requeue_counts_resets_finished_steps_and_writes_history(
    rules_db: tuple[PerfDB, int, int],
) -> None:
    perfdb, type_id, object_id = rules_db
    with perfdb.engine.begin() as connection:
        job_id = job_in(connection, type_id, JobState.RUNNING)
        step = STEP.insert().values(job_id=job_id, object_id=object_id, state_id=JobState.CREATED)
        step_id = connection.execute(
            step.values(position=0, actor=ACTORS[Actor.RUN]).returning(STEP.c.id)
        ).scalar_one()
        for state in (JobState.RUNNING, JobState.FINISHED):
            connection.execute(
                STEP.update().where(STEP.c.id == step_id).values(state_id=state, actor="run:x")
            )
        connection.execute(
            JOB.update().where(JOB.c.id == job_id).values(state_id=JobState.FINISHED, actor="run:x")
        )
    # A frontend's one UPDATE, naming itself.
    with perfdb.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE job_instances SET state_id = 2, actor = 'web:ana' WHERE id = :id"),
            {"id": job_id},
        )
    job = perfdb.queue.get_job(job_id)
    [step_row] = perfdb.queue.get_steps(job_id)
    assert (job.state, job.queue_count, job.finished) == (JobState.QUEUED, 2, None)
    assert (step_row.state, step_row.comment) == (JobState.CREATED, None)
    history = perfdb.queue.history(job_id)
    assert (history[-2].step_id, history[-1].step_id) in ((None, step_id), (step_id, None))
    reset = next(entry for entry in history[-2:] if entry.step_id == step_id)
    assert (reset.from_state, reset.to_state, reset.actor, reset.comment) == (
        JobState.FINISHED,
        JobState.CREATED,
        "web:ana",
        "recompute",
    )
    with perfdb.engine.connect() as connection:
        actors = connection.execute(
            sa.text("SELECT actor FROM job_instances UNION ALL SELECT actor FROM job_steps")
        ).scalars()
        assert set(actors) == {None}  # never kept after the statement


def test_the_database_fills_in_a_plain_insert_with_its_clock(
    rules_db: tuple[PerfDB, int, int],
) -> None:
    perfdb, type_id, _ = rules_db
    with perfdb.engine.begin() as connection:
        database_now = connection.execute(sa.select(sa.func.current_timestamp())).scalar_one()
        job_id = connection.execute(
            sa.text(
                "INSERT INTO job_instances (type_id, state_id, parameters, description) "
                "VALUES (:type_id, 2, '{}', 'from a frontend') RETURNING id"
            ),
            {"type_id": type_id},
        ).scalar_one()
    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.queue_count, job.run_id) == (JobState.QUEUED, 1, None)
    assert job.created == job.last_state_change
    assert abs((job.created - _aware(database_now)).total_seconds()) < 5
    [entry] = perfdb.queue.history(job_id)
    expected_actor = "sql" if perfdb.engine.dialect.name == "sqlite" else "sql:root"
    assert (entry.from_state, entry.to_state, entry.actor) == (
        None,
        JobState.QUEUED,
        expected_actor,
    )


def _aware(value: Any) -> Any:
    from jobs_pipeline.perfdb.types import UTCDateTime

    return UTCDateTime().process_result_value(value, sa.engine.default.DefaultDialect())


def test_a_refusal_reaches_the_application_as_invalid_transition(
    rules_db: tuple[PerfDB, int, int],
) -> None:
    perfdb, type_id, _ = rules_db
    with perfdb.engine.begin() as connection:
        job_id = job_in(connection, type_id, JobState.RUNNING)
    with pytest.raises(InvalidTransition, match=r"^jobs_pipeline: .*Running") as caught:
        with begin(perfdb.engine) as connection:
            connection.execute(sa.text("DELETE FROM job_instances WHERE id = :id"), {"id": job_id})
    assert "\n" not in str(caught.value)
    assert perfdb.queue.get_job(job_id).state == JobState.RUNNING


def test_a_step_start_and_finish_cost_three_statements_each(
    perfdb: PerfDB, object_ids: dict[str, int]
) -> None:
    """The hot path: the triggers write the history rows and timestamps, so a step's start is
    lock + move + read back, and its finish lock + move + "anything left to run?" (four each
    when the application wrote the history itself)."""
    job_id, step_ids = running_job(perfdb, object_ids, count=2)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")):
            statements.append(statement)

    sa.event.listen(perfdb.engine, "before_cursor_execute", count)
    try:
        perfdb.queue.start_step(step_ids[0], "run-a")
        started = len(statements)
        perfdb.queue.finish_step(step_ids[0], run_id="run-a")
        finished = len(statements) - started
    finally:
        sa.event.remove(perfdb.engine, "before_cursor_execute", count)
    assert (started, finished) == (3, 3), statements
    history = perfdb.queue.history(job_id)
    assert [(entry.step_id, entry.to_state) for entry in history[-2:]] == [
        (step_ids[0], JobState.RUNNING),
        (step_ids[0], JobState.FINISHED),
    ]


@pytest.fixture
def pg_roles(pg_perfdb_url: str) -> Iterator[tuple[PerfDB, str, str]]:
    """A frontend role and a worker role (NOLOGIN, members of the roles the migration made),
    with the table privileges a deployment grants them; dropped afterwards."""
    perfdb = PerfDB.connect(pg_perfdb_url)
    suffix = uuid.uuid4().hex[:8]
    frontend, worker = f"jp_test_frontend_{suffix}", f"jp_test_worker_{suffix}"
    with perfdb.engine.begin() as connection:
        for role, member_of in ((frontend, FRONTEND_ROLE), (worker, WORKER_ROLE)):
            connection.exec_driver_sql(f"CREATE ROLE {role} NOLOGIN IN ROLE {member_of}")
            connection.exec_driver_sql(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
            )
            connection.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    try:
        yield perfdb, frontend, worker
    finally:
        with perfdb.engine.begin() as connection:
            for role in (frontend, worker):
                connection.exec_driver_sql(f"DROP OWNED BY {role}")
                connection.exec_driver_sql(f"DROP ROLE {role}")
        perfdb.dispose()


def test_on_postgresql_only_worker_roles_may_act_as_a_run(
    pg_roles: tuple[PerfDB, str, str],
) -> None:
    perfdb, frontend, worker = pg_roles
    with perfdb.engine.begin() as connection:
        type_id = connection.execute(sa.text("SELECT min(id) FROM job_types")).scalar_one()
        job_id = job_in(connection, type_id, JobState.QUEUED)
    claim = sa.text(
        "UPDATE job_instances SET state_id = 3, run_id = 'run-x', actor = 'run:run-x' "
        "WHERE id = :id"
    )
    with perfdb.engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL ROLE {frontend}")
        with pytest.raises(sa.exc.IntegrityError, match="needs membership of jobs_pipeline_worker"):
            connection.execute(claim, {"id": job_id})
    with perfdb.engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL ROLE {frontend}")
        connection.execute(
            sa.text("UPDATE job_instances SET cancel_requested_by = 'ana' WHERE id = :id"),
            {"id": job_id},
        )  # what a frontend may do
    with perfdb.engine.begin() as connection:
        connection.exec_driver_sql(f"SET LOCAL ROLE {worker}")
        connection.execute(claim, {"id": job_id})
    assert perfdb.queue.get_job(job_id).state == JobState.RUNNING
    history = perfdb.queue.history(job_id)
    assert [(entry.to_state, entry.actor) for entry in history[-1:]] == [
        (JobState.RUNNING, "run:run-x")
    ]
