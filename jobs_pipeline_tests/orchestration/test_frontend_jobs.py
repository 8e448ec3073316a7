"""Jobs that only a frontend's plain SQL moves (insert, queue, requeue, cancel) end Finished or
Failed through the real sensor, run and reconciler, on both databases."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import sqlalchemy as sa

from jobs_pipeline.definitions import defs
from jobs_pipeline.orchestration.reconciler import Cursor, Reconciler
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.alarm_fleet import (
    ALARM_IDS,
    ALL_OBJECTS,
    PERIOD,
    import_missing_values,
)
from jobs_pipeline_tests.orchestration.perfdb_job_config import perfdb_job_resources
from jobs_pipeline_tests.orchestration.sensor_ticks import tick


def plain_sql(perfdb: PerfDB, sql: str, **params: Any) -> Any:
    """A frontend's statement: no actor named, no call into the queue API."""
    with perfdb.engine.begin() as connection:
        result = connection.execute(sa.text(sql), params)
        return result.scalar() if result.returns_rows else None


def insert_queued_job(perfdb: PerfDB) -> int:
    parameters = {"object_names": list(ALL_OBJECTS), "alarm_ids": list(ALARM_IDS), **PERIOD}
    job_id: int = plain_sql(
        perfdb,
        "INSERT INTO job_instances (type_id, state_id, parameters, description) "
        "VALUES ((SELECT id FROM job_types WHERE name = 'Alarm Calculation'), 2, :parameters, "
        "'from the web') RETURNING id",
        parameters=json.dumps(parameters),
    )
    return job_id


def run_what_the_sensor_requests(
    perfdb_url: str, resource: PerfDBResource, instance: dg.DagsterInstance
) -> None:
    for request in tick(resource).run_requests:
        defs.get_job_def("perfdb_job").execute_in_process(
            run_config=request.run_config,
            tags=request.tags,
            instance=instance,
            resources=perfdb_job_resources(perfdb_url),
            raise_on_error=False,
        )


def test_a_job_queued_and_requeued_by_plain_sql_ends_finished(
    seeded_db: PerfDB,
    perfdb_url: str,
    perfdb_resource: PerfDBResource,
    dagster_instance: dg.DagsterInstance,
) -> None:
    job_id = insert_queued_job(seeded_db)

    run_what_the_sensor_requests(perfdb_url, perfdb_resource, dagster_instance)
    failed = seeded_db.queue.get_job(job_id)
    assert failed.state == JobState.FAILED  # LAN-03 has no data yet
    assert failed.comment == "2 (33.33%) steps failed"

    import_missing_values(seeded_db)
    plain_sql(seeded_db, "UPDATE job_instances SET state_id = 2 WHERE id = :id", id=job_id)
    run_what_the_sensor_requests(perfdb_url, perfdb_resource, dagster_instance)

    job = seeded_db.queue.get_job(job_id)
    assert job.state == JobState.FINISHED
    assert job.queue_count == 2
    assert {step.state for step in seeded_db.queue.get_steps(job_id)} == {JobState.FINISHED}


def test_a_job_canceled_by_plain_sql_before_its_run_ends_failed_and_never_runs(
    seeded_db: PerfDB,
    perfdb_url: str,
    perfdb_resource: PerfDBResource,
    dagster_instance: dg.DagsterInstance,
) -> None:
    job_id = insert_queued_job(seeded_db)
    plain_sql(
        seeded_db,
        "UPDATE job_instances SET cancel_requested = CURRENT_TIMESTAMP, "
        "cancel_requested_by = 'web:ana' WHERE id = :id",
        id=job_id,
    )

    Reconciler(seeded_db, dagster_instance).sweep(Cursor())
    run_what_the_sensor_requests(perfdb_url, perfdb_resource, dagster_instance)

    job = seeded_db.queue.get_job(job_id)
    assert job.state == JobState.FAILED
    assert job.comment == "canceled by web:ana"
    assert seeded_db.queue.get_steps(job_id) == []
