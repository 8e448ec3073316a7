"""The CLI tests' fleet (the `fleet` fixture in conftest.py), Alarm Calculation parameters over
it, and a snapshot of the database to compare before and after a command."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from jobs_pipeline.perfdb import PerfDB

NASTY = "x'; DROP TABLE objects; --"
TABLES = (
    "objects",
    "features",
    "feature_values",
    "alarm_definitions",
    "alarm_occurrences",
    "job_instances",
    "job_steps",
    "job_state_history",
)


def params(**overrides: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "object_names": ["LAN-01", "LAN-02"],
        "alarm_ids": [101],
        "start": "2024-01-01 00:00:00",
        "end": "2024-01-02 00:00:00",
    }
    parameters.update(overrides)
    return parameters


def snapshot(perfdb: PerfDB) -> dict[str, Any]:
    """Row counts of every table plus the jobs' and steps' contents."""
    with perfdb.engine.connect() as connection:
        state: dict[str, Any] = {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }
    state["jobs"] = perfdb.queue.list_jobs()
    state["steps"] = [perfdb.queue.get_steps(job.id) for job in state["jobs"]]
    state["alarms"] = perfdb.catalog.list_alarms()
    return state
