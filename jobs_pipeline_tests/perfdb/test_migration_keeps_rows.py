"""Upgrading a database that holds jobs keeps every row: SQLite migrations that rebuild a table
must not cascade-delete the rows that refer to it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.migrate import upgrade
from jobs_pipeline_tests.conftest import BACKENDS

# Rows as they were written before the database kept the rules (revision 0004).
ROWS_AT_0004 = (
    "INSERT INTO job_types (id, name, description, parameters_schema) "
    "VALUES (1, 'Alarm Calculation', '', '{}')",
    "INSERT INTO objects (id, name) VALUES (1, 'INV-01')",
    "INSERT INTO features (id, name, unit, sampling_period_seconds) VALUES (1, 'power', 'kW', 600)",
    "INSERT INTO alarm_definitions (id, name, feature_id, operator, threshold, "
    "min_duration_seconds) VALUES (1, 'low power', 1, '<', 5.0, 0)",
    "INSERT INTO job_instances (id, type_id, state_id, parameters, description, created, "
    "last_state_change, queue_count) VALUES (1, 1, 4, '{}', 'nightly', "
    "'2026-01-01 00:00:00', '2026-01-01 00:10:00', 1)",
    "INSERT INTO job_steps (id, job_id, position, object_id, alarm_id, state_id, created, "
    "last_state_change, attempts) VALUES "
    "(1, 1, 0, 1, 1, 4, '2026-01-01 00:01:00', '2026-01-01 00:05:00', 1), "
    "(2, 1, 1, 1, NULL, 5, '2026-01-01 00:01:00', '2026-01-01 00:06:00', 1)",
    "INSERT INTO job_state_history (job_id, step_id, from_state_id, to_state_id, actor, "
    "changed_at) VALUES (1, NULL, NULL, 2, 'user:cli', '2026-01-01 00:00:00'), "
    "(1, 1, 3, 4, 'run:r1', '2026-01-01 00:05:00'), "
    "(1, 2, 3, 5, 'run:r1', '2026-01-01 00:06:00')",
    "INSERT INTO alarm_occurrences (id, object_id, alarm_id, start_time, end_time, step_id) "
    "VALUES (1, 1, 1, '2026-01-01 00:00:00', '2026-01-01 01:00:00', 1)",
)
COUNTED = (
    "job_instances",
    "job_steps",
    "job_state_history",
    "alarm_occurrences",
    "objects",
    "alarm_definitions",
)


def _counts(perfdb: PerfDB) -> dict[str, int]:
    with perfdb.engine.connect() as connection:
        return {
            table: connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            for table in COUNTED
        }


@pytest.mark.parametrize("empty_perfdb_url", BACKENDS, indirect=True)
def test_upgrade_from_0004_keeps_jobs_steps_history_and_occurrences(
    empty_perfdb_url: str,
) -> None:
    perfdb = PerfDB.connect(empty_perfdb_url)
    upgrade(perfdb.engine, "0004")
    with begin(perfdb.engine) as connection:
        for statement in ROWS_AT_0004:
            connection.exec_driver_sql(statement)
    before = _counts(perfdb)
    upgrade(perfdb.engine)
    after = _counts(perfdb)
    with perfdb.engine.connect() as connection:
        steps = connection.execute(
            sa.text("SELECT step_id, object, state FROM job_step_overview ORDER BY step_id")
        ).all()
        occurrence_step = connection.exec_driver_sql(
            "SELECT step_id FROM alarm_occurrences"
        ).scalar_one()
    history = perfdb.queue.history(1)
    perfdb.dispose()
    assert before == {table: 1 for table in COUNTED} | {"job_steps": 2, "job_state_history": 3}
    assert after == before
    assert [tuple(row) for row in steps] == [(1, "INV-01", "Finished"), (2, "INV-01", "Failed")]
    assert occurrence_step == 1
    assert [(entry.step_id, entry.actor) for entry in history] == [
        (None, "user:cli"),
        (1, "run:r1"),
        (2, "run:r1"),
    ]
