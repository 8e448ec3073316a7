"""A run of `perfdb_job` on SQLite while a long import holds the database's write lock for
longer than the busy timeout: its ops wait and retry, and the job finishes; nothing fails for
good. (PostgreSQL has no database-wide write lock.)"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest

from jobs_pipeline.definitions import defs
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import SQLITE_BUSY_TIMEOUT_SECONDS, begin
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.orchestration.alarm_fleet import FEATURE, T0, WITH_DATA, alarm_job
from jobs_pipeline_tests.orchestration.perfdb_job_config import perfdb_job_resources, plan_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("perfdb_resource"),
]

# Longer than the busy timeout, so that every op that writes meanwhile gets `Busy` once.
LOCK_SECONDS = SQLITE_BUSY_TIMEOUT_SECONDS + 10


def hold_the_write_lock(perfdb: PerfDB, held: threading.Event, errors: list[Exception]) -> None:
    """What a long `features import` does: one transaction writing values, for a long time."""
    frame = pd.DataFrame(
        {
            "object": "WT-IMPORT",
            "feature": FEATURE,
            "timestamp": [T0 + timedelta(days=30, minutes=10 * i) for i in range(1000)],
            "value": 1.0,
        }
    )
    try:
        with begin(perfdb.engine) as connection:
            connection.exec_driver_sql("UPDATE objects SET name = name")
            held.set()
            time.sleep(LOCK_SECONDS)
        perfdb.values.import_frame(frame)
    except Exception as error:
        errors.append(error)
    finally:
        held.set()


@pytest.mark.parametrize("perfdb_url", ["sqlite"], indirect=True)
def test_a_run_waits_for_a_long_import_and_finishes(
    seeded_db: PerfDB, perfdb_url: str, dagster_instance: dg.DagsterInstance
) -> None:
    job = alarm_job(seeded_db, WITH_DATA)
    held, errors = threading.Event(), []
    importer = threading.Thread(target=hold_the_write_lock, args=(seeded_db, held, errors))
    importer.start()
    held.wait()
    try:
        started = time.monotonic()
        result = defs.get_job_def("perfdb_job").execute_in_process(
            run_config=plan_config(job.id),
            instance=dagster_instance,
            resources=perfdb_job_resources(perfdb_url),
            raise_on_error=False,
        )
        waited = time.monotonic() - started
    finally:
        importer.join()

    assert errors == []
    assert waited > SQLITE_BUSY_TIMEOUT_SECONDS  # the run did wait for the import
    assert result.success
    job = seeded_db.queue.get_job(job.id)
    assert (job.state, job.comment) == (JobState.FINISHED, None)
    assert {step.state for step in seeded_db.queue.get_steps(job.id)} == {JobState.FINISHED}
    retried = [
        event
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    ]
    assert retried, "no op met the locked database"
