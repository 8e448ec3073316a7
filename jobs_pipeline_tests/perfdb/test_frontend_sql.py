"""A frontend's plain SQL, as `docs/frontend.md` writes it, on both databases.

The frontend here is what a web application would be: a plain DBAPI connection (the standard
library's `sqlite3`; psycopg logged in as a member of `jobs_pipeline_frontend` on PostgreSQL),
no SQLAlchemy, no call into this package. What it may do works; what it may not do is refused by
the database itself and changes nothing.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.roles import grant_roles
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.conftest import _admin_engine

ALARM_CALC = "Alarm Calculation"
OBJECTS = ("LAN-01", "LAN-02")
ALARM_ID = 101
PARAMETERS = {
    "object_names": list(OBJECTS),
    "alarm_ids": [ALARM_ID],
    "start": "2024-01-01 00:00:00",
    "end": "2024-01-02 00:00:00",
}

CREATED, QUEUED, RUNNING, FINISHED, FAILED = (state.value for state in JobState)

INSERT_JOB = """
INSERT INTO job_instances (type_id, state_id, parameters, description)
VALUES ((SELECT id FROM job_types WHERE name = 'Alarm Calculation'), :state, :parameters,
        :description)
RETURNING id
"""


class Refused(Exception):
    """The database refused the statement."""


class PlainSQL:
    """One autocommitting DBAPI connection; statements use `:name` placeholders."""

    def __init__(self, connection: Any, backend: str, who: str) -> None:
        self.connection = connection
        self.backend = backend
        self.who = who

    def execute(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        if self.backend == "postgresql":
            # `:name` placeholders, not the colons inside names such as 'web:ana'.
            sql = re.sub(r"(?<![\w:']):(\w+)", r"%(\1)s", sql)
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        except (sqlite3.DatabaseError, psycopg.DatabaseError) as error:
            raise Refused(str(error)) from error
        finally:
            cursor.close()

    def one(self, sql: str, **params: Any) -> Any:
        rows = self.execute(sql, **params)
        assert len(rows) == 1, rows
        return rows[0][0] if len(rows[0]) == 1 else rows[0]

    def insert_job(self, state: int = CREATED, description: str = "from the web") -> int:
        job_id: int = self.one(
            INSERT_JOB, state=state, parameters=json.dumps(PARAMETERS), description=description
        )
        return job_id


@pytest.fixture
def db(perfdb: PerfDB) -> PerfDB:
    perfdb.catalog.ensure_objects(OBJECTS)
    perfdb.catalog.ensure_feature("active_power", unit="kW")
    perfdb.catalog.define_alarm(
        alarm_id=ALARM_ID, name="High power", feature="active_power", operator=">", threshold=2e3
    )
    return perfdb


@pytest.fixture
def frontend(db: PerfDB) -> Iterator[PlainSQL]:
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        yield PlainSQL(connection, "sqlite", "sql")
        connection.close()
        return
    role = f"jp_web_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as admin:
        admin.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    try:
        grant_roles(db.engine, frontends=[role])
        plain = make_url(url).set(drivername="postgresql", username=role, password=None)
        connection = psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True)
        yield PlainSQL(connection, "postgresql", f"sql:{role}")
        connection.close()
    finally:
        db.dispose()
        with _admin_engine().connect() as admin:
            admin.exec_driver_sql(f"DROP OWNED BY {role}")
            admin.exec_driver_sql(f"DROP ROLE {role}")


def job_row(db: PerfDB, job_id: int) -> dict[str, Any]:
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT * FROM job_instances WHERE id = :id"), {"id": job_id}
        ).first()
    assert row is not None, f"job {job_id} is gone"
    values = dict(row._mapping)
    if isinstance(values["parameters"], str):  # SQLite's JSON is text to a plain query
        values["parameters"] = json.loads(values["parameters"])
    return values


def step_states(db: PerfDB, job_id: int) -> list[int]:
    with db.engine.connect() as connection:
        return list(
            connection.scalars(
                sa.text("SELECT state_id FROM job_steps WHERE job_id = :id ORDER BY position"),
                {"id": job_id},
            )
        )


def history(db: PerfDB, job_id: int) -> list[tuple[Any, ...]]:
    with db.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                sa.text(
                    "SELECT step_id, from_state_id, to_state_id, actor FROM job_state_history "
                    "WHERE job_id = :id ORDER BY id"
                ),
                {"id": job_id},
            )
        ]


def with_steps(db: PerfDB, job_id: int, run_id: str = "run-a") -> list[int]:
    """The job, Queued by the frontend, claimed by a run that plans two steps."""
    db.queue.claim_job(job_id, run_id)
    object_ids = db.catalog.ensure_objects(OBJECTS)
    steps = db.queue.create_steps(
        job_id, [NewStep(object_id=object_ids[name], alarm_id=ALARM_ID) for name in OBJECTS]
    )
    return [step.id for step in steps]


def finished_job(db: PerfDB, frontend: PlainSQL, *, fail_last: bool = False) -> int:
    job_id = frontend.insert_job(QUEUED)
    steps = with_steps(db, job_id)
    for index, step_id in enumerate(steps):
        db.queue.start_step(step_id, "run-a")
        error = "no data" if fail_last and index == len(steps) - 1 else None
        db.queue.finish_step(step_id, error, run_id="run-a")
    return job_id


# --- what a frontend may do ------------------------------------------------------------------


def test_a_job_inserted_by_plain_sql_gets_its_timestamps_counter_and_history(
    db: PerfDB, frontend: PlainSQL
) -> None:
    created = frontend.insert_job(CREATED)
    queued = frontend.insert_job(QUEUED)

    for job_id, state, count in ((created, CREATED, 0), (queued, QUEUED, 1)):
        row = job_row(db, job_id)
        assert row["state_id"] == state
        assert row["created"] is not None and row["last_state_change"] is not None
        assert row["queue_count"] == count
        assert (row["run_id"], row["started"], row["finished"]) == (None, None, None)
        assert row["parameters"] == PARAMETERS
        assert history(db, job_id) == [(None, None, state, frontend.who)]


def test_queue_and_requeue_are_one_update_of_the_state_counted_by_the_database(
    db: PerfDB, frontend: PlainSQL
) -> None:
    job_id = frontend.insert_job(CREATED)
    frontend.execute("UPDATE job_instances SET state_id = 2 WHERE id = :id", id=job_id)
    assert job_row(db, job_id)["queue_count"] == 1

    failed = finished_job(db, frontend, fail_last=True)
    assert job_row(db, failed)["state_id"] == FAILED
    frontend.execute("UPDATE job_instances SET state_id = 2 WHERE id = :id", id=failed)
    row = job_row(db, failed)
    assert (row["state_id"], row["queue_count"]) == (QUEUED, 2)
    assert (row["comment"], row["finished"]) == (None, None)
    # A failed job runs again only what did not finish.
    assert step_states(db, failed) == [FINISHED, FAILED]
    assert history(db, failed)[-1] == (None, FAILED, QUEUED, frontend.who)


def test_requeueing_a_finished_job_recomputes_every_step(db: PerfDB, frontend: PlainSQL) -> None:
    job_id = finished_job(db, frontend)
    assert job_row(db, job_id)["state_id"] == FINISHED

    frontend.execute("UPDATE job_instances SET state_id = 2 WHERE id = :id", id=job_id)

    assert job_row(db, job_id)["queue_count"] == 2
    assert step_states(db, job_id) == [CREATED, CREATED]


def test_a_created_or_ended_job_can_be_edited_and_an_ended_one_gets_new_steps(
    db: PerfDB, frontend: PlainSQL
) -> None:
    job_id = frontend.insert_job(CREATED)
    frontend.execute(
        "UPDATE job_instances SET description = 'renamed', parameters = :parameters WHERE id = :id",
        id=job_id,
        parameters=json.dumps({**PARAMETERS, "object_names": ["LAN-01"]}),
    )
    assert job_row(db, job_id)["description"] == "renamed"
    assert job_row(db, job_id)["parameters"]["object_names"] == ["LAN-01"]

    ended = finished_job(db, frontend, fail_last=True)
    frontend.execute(
        "UPDATE job_instances SET parameters = :parameters WHERE id = :id",
        id=ended,
        parameters=json.dumps({**PARAMETERS, "end": "2024-01-03 00:00:00"}),
    )
    assert job_row(db, ended)["parameters"]["end"] == "2024-01-03 00:00:00"
    assert step_states(db, ended) == []  # planned again when it is next queued


def test_a_cancel_request_is_a_row_update_stamped_by_the_database(
    db: PerfDB, frontend: PlainSQL
) -> None:
    job_id = frontend.insert_job(QUEUED)
    frontend.execute(
        "UPDATE job_instances SET cancel_requested = CURRENT_TIMESTAMP, "
        "cancel_requested_by = 'web:ana' WHERE id = :id",
        id=job_id,
    )
    row = job_row(db, job_id)
    assert row["cancel_requested"] is not None
    assert row["cancel_requested_by"] == "web:ana"

    # The reconciler acts on it (its sweep calls exactly this).
    after = db.queue.handle_cancel_request(job_id)
    assert after.state == JobState.FAILED
    assert after.comment == "canceled by web:ana"


def test_a_job_that_is_not_running_can_be_deleted_with_its_steps_and_history(
    db: PerfDB, frontend: PlainSQL
) -> None:
    job_id = finished_job(db, frontend, fail_last=True)
    frontend.execute("DELETE FROM job_instances WHERE id = :id", id=job_id)
    with db.engine.connect() as connection:
        for table in ("job_instances", "job_steps", "job_state_history"):
            column = "id" if table == "job_instances" else "job_id"
            left = connection.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": job_id}
            ).scalar_one()
            assert left == 0, table


def test_job_overview_gives_a_page_of_jobs_in_one_query(db: PerfDB, frontend: PlainSQL) -> None:
    done = finished_job(db, frontend, fail_last=True)
    waiting = frontend.insert_job(QUEUED, description="waiting")

    rows = frontend.execute(
        "SELECT job_id, job_type, state, description, steps_total, steps_created, steps_running, "
        "steps_finished, steps_failed, progress_percent FROM job_overview ORDER BY job_id"
    )

    assert [tuple(row) for row in rows] == [
        (done, ALARM_CALC, "Failed", "from the web", 2, 0, 0, 1, 1, 100.0),
        (waiting, ALARM_CALC, "Queued", "waiting", 0, 0, 0, 0, 0, 0.0),
    ]
    steps = frontend.execute(
        "SELECT object, alarm, state FROM job_step_overview WHERE job_id = :id ORDER BY position",
        id=done,
    )
    assert [tuple(row) for row in steps] == [
        ("LAN-01", "High power", "Finished"),
        ("LAN-02", "High power", "Failed"),
    ]


# --- what a frontend may not do --------------------------------------------------------------


def refused(db: PerfDB, frontend: PlainSQL, job_id: int, sql: str, **params: Any) -> str:
    """Runs a statement the database must refuse; checks that nothing moved and that the message
    is the rules' own (naming the job where the database can: SQLite's RAISE takes only a fixed
    text, so there it names the move and what is allowed instead)."""
    before = (job_row(db, job_id), step_states(db, job_id), history(db, job_id))
    with pytest.raises(Refused) as refusal:
        frontend.execute(sql, id=job_id, **params)
    assert (job_row(db, job_id), step_states(db, job_id), history(db, job_id)) == before
    message = str(refusal.value)
    if message.startswith("jobs_pipeline:") and frontend.backend == "postgresql":
        assert f"job {job_id}" in message, message
    return message


@pytest.mark.parametrize("state", [RUNNING, FINISHED, FAILED])
def test_a_job_cannot_be_inserted_in_a_state_a_run_gives_it(
    db: PerfDB, frontend: PlainSQL, state: int
) -> None:
    with pytest.raises(Refused, match="jobs_pipeline:"):
        frontend.insert_job(state)
    with db.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM job_instances")).scalar() == 0


def test_a_job_cannot_be_inserted_with_a_run(db: PerfDB, frontend: PlainSQL) -> None:
    with pytest.raises(Refused, match="jobs_pipeline:"):
        frontend.execute(
            "INSERT INTO job_instances (type_id, state_id, parameters, run_id) "
            "VALUES ((SELECT id FROM job_types WHERE name = 'Alarm Calculation'), 2, "
            ":parameters, 'forged-run')",
            parameters=json.dumps(PARAMETERS),
        )


REFUSED_ON_A_RUNNING_JOB = {
    "back to Queued": "UPDATE job_instances SET state_id = 2 WHERE id = :id",
    "failed by hand": "UPDATE job_instances SET state_id = 5 WHERE id = :id",
    "finished by hand": "UPDATE job_instances SET state_id = 4 WHERE id = :id",
    "parameters edited": "UPDATE job_instances SET parameters = '{}' WHERE id = :id",
    "description edited": "UPDATE job_instances SET description = 'x' WHERE id = :id",
    "run taken over": "UPDATE job_instances SET run_id = 'forged' WHERE id = :id",
    "heartbeat forged": "UPDATE job_instances SET heartbeat = CURRENT_TIMESTAMP WHERE id = :id",
    "queue count bumped": "UPDATE job_instances SET queue_count = 7 WHERE id = :id",
    "deleted": "DELETE FROM job_instances WHERE id = :id",
    "steps reset": "UPDATE job_steps SET state_id = 1 WHERE job_id = :id AND state_id = 4",
    "step failed by hand": "UPDATE job_steps SET state_id = 5 WHERE job_id = :id",
    "step deleted": "DELETE FROM job_steps WHERE job_id = :id",
    "step added": "INSERT INTO job_steps (job_id, position, object_id, state_id) "
    "SELECT :id, 9, id, 1 FROM objects WHERE name = 'LAN-01'",
}


@pytest.mark.parametrize("move", list(REFUSED_ON_A_RUNNING_JOB))
def test_a_running_job_is_the_runs_alone(db: PerfDB, frontend: PlainSQL, move: str) -> None:
    job_id = frontend.insert_job(QUEUED)
    steps = with_steps(db, job_id)
    db.queue.start_step(steps[0], "run-a")
    db.queue.finish_step(steps[0], run_id="run-a")

    message = refused(db, frontend, job_id, REFUSED_ON_A_RUNNING_JOB[move])

    assert message.startswith("jobs_pipeline:") or "permission denied" in message


@pytest.mark.parametrize(
    ("start", "sql"),
    [
        (QUEUED, "UPDATE job_instances SET state_id = 3 WHERE id = :id"),  # forged claim
        (CREATED, "UPDATE job_instances SET state_id = 4 WHERE id = :id"),
        (CREATED, "UPDATE job_instances SET state_id = 3 WHERE id = :id"),
        (QUEUED, "UPDATE job_instances SET parameters = '{}' WHERE id = :id"),
        (QUEUED, "UPDATE job_instances SET created = CURRENT_TIMESTAMP WHERE id = :id"),
    ],
)
def test_moves_outside_the_frontends_rules_are_refused_with_a_reason(
    db: PerfDB, frontend: PlainSQL, start: int, sql: str
) -> None:
    job_id = frontend.insert_job(start)
    message = refused(db, frontend, job_id, sql)
    assert message.startswith("jobs_pipeline:")


# SQLite has no roles: whoever opens its file may act as the system. PostgreSQL tells them apart.
ON_POSTGRESQL = pytest.mark.parametrize("perfdb_url", ["postgresql"], indirect=True)


@ON_POSTGRESQL
def test_a_frontend_cannot_act_as_a_run_by_naming_one(db: PerfDB, frontend: PlainSQL) -> None:
    job_id = frontend.insert_job(QUEUED)
    sql = "UPDATE job_instances SET state_id = 3, run_id = 'r1', actor = 'run:r1' WHERE id = :id"
    message = refused(db, frontend, job_id, sql)
    assert "jobs_pipeline_worker" in message


@ON_POSTGRESQL
def test_history_is_written_by_the_database_alone(db: PerfDB, frontend: PlainSQL) -> None:
    job_id = frontend.insert_job(CREATED)
    refused(
        db,
        frontend,
        job_id,
        "INSERT INTO job_state_history (job_id, to_state_id, actor, changed_at) "
        "VALUES (:id, 4, 'run:forged', CURRENT_TIMESTAMP)",
    )


@ON_POSTGRESQL
def test_a_member_of_the_worker_role_runs_jobs_without_being_superuser(
    db: PerfDB, frontend: PlainSQL
) -> None:
    job_id = frontend.insert_job(QUEUED)
    role = f"jp_worker_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as admin:
        admin.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    worker = PerfDB.connect(make_url(db.engine.url).set(username=role, password=None))
    try:
        grant_roles(db.engine, workers=[role])
        for step_id in with_steps(worker, job_id):
            worker.queue.start_step(step_id, "run-a")
            worker.queue.finish_step(step_id, run_id="run-a")
        assert worker.queue.get_job(job_id).state == JobState.FINISHED
        actors = {actor for *_, actor in history(db, job_id)}
        assert frontend.who in actors
        assert all(actor == frontend.who or actor.startswith("run:") for actor in actors)
    finally:
        worker.dispose()
        with _admin_engine().connect() as admin:
            admin.exec_driver_sql(f"DROP OWNED BY {role}")
            admin.exec_driver_sql(f"DROP ROLE {role}")


def test_db_roles_names_what_is_wrong_and_grants_membership(
    perfdb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs_pipeline.cli import main

    if make_url(perfdb_url).get_backend_name() == "sqlite":
        assert main(["--db", perfdb_url, "db", "roles"]) == 2
        assert "roles exist only on PostgreSQL" in capsys.readouterr().err
        return
    assert main(["--db", perfdb_url, "db", "roles", "--frontend", "no_such_role_x"]) == 2
    assert "role 'no_such_role_x' does not exist" in capsys.readouterr().err

    role = f"jp_web_{uuid.uuid4().hex[:10]}"
    with _admin_engine().connect() as admin:
        admin.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    try:
        assert main(["--db", perfdb_url, "db", "roles", "--frontend", role]) == 0
        assert f"members added: {role}" in capsys.readouterr().out
        with _admin_engine().connect() as admin:
            member = admin.exec_driver_sql(
                f"SELECT pg_has_role('{role}', 'jobs_pipeline_frontend', 'MEMBER'), "
                f"pg_has_role('{role}', 'jobs_pipeline_worker', 'MEMBER')"
            ).one()
        assert tuple(member) == (True, False)
    finally:
        PerfDB.connect(perfdb_url).dispose()
        with _admin_engine().connect() as admin:
            admin.exec_driver_sql(f"DROP OWNED BY {role}")
            admin.exec_driver_sql(f"DROP ROLE {role}")
