"""A SQLite file locked by a long writer (a `features import`) is a wait, not a failure: `Busy`
is transient, and a heartbeat that could not write meanwhile resumes once the lock is gone.
(PostgreSQL has no database-wide write lock: nothing to test there.)"""

from __future__ import annotations

import time

import pytest

from jobs_pipeline.jobs.heartbeat_thread import HeartbeatThread
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import begin, create_perfdb_engine
from jobs_pipeline.perfdb.errors import Busy, is_transient
from jobs_pipeline.settings import HEARTBEAT_SILENCE_SECONDS
from jobs_pipeline_tests.perfdb.queue_jobs import running_job

SQLITE_ONLY = pytest.mark.parametrize("perfdb_url", ["sqlite"], indirect=True)


@SQLITE_ONLY
def test_a_database_locked_past_the_busy_timeout_is_a_transient_error(
    perfdb: PerfDB, perfdb_url: str, object_ids: dict[str, int]
) -> None:
    job_id, _ = running_job(perfdb, object_ids, count=1)
    other = PerfDB(create_perfdb_engine(perfdb_url, busy_timeout_seconds=0.1))
    try:
        with begin(perfdb.engine) as holding:
            holding.exec_driver_sql("UPDATE objects SET name = name")  # holds the write lock
            with pytest.raises(Busy) as raised:
                other.queue.beat(job_id, "run-a")
        assert is_transient(raised.value)
        assert other.queue.beat(job_id, "run-a")  # and once the lock is gone, it just works
    finally:
        other.dispose()


@SQLITE_ONLY
def test_the_heartbeat_resumes_once_a_locked_database_is_free_again(
    perfdb: PerfDB, perfdb_url: str, object_ids: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HEARTBEAT_SILENCE_SECONDS.name, "0.5")
    job_id, _ = running_job(perfdb, object_ids, count=1)
    beating = PerfDB(create_perfdb_engine(perfdb_url, busy_timeout_seconds=0.1))
    try:
        with HeartbeatThread(beating.queue, job_id, "run-a", interval=0.05) as heartbeat:
            with begin(perfdb.engine) as holding:
                holding.exec_driver_sql("UPDATE objects SET name = name")
                # Three times the silence after which a beat is presumed dead: the thread keeps
                # trying all along.
                time.sleep(1.5)
            locked_beat = perfdb.queue.get_job(job_id).heartbeat
            deadline = time.monotonic() + 10
            while perfdb.queue.get_job(job_id).heartbeat == locked_beat:
                assert heartbeat.alive, "the heartbeat gave up while the database was locked"
                assert time.monotonic() < deadline, "no heartbeat after the lock was released"
                time.sleep(0.05)
            assert heartbeat.alive
    finally:
        beating.dispose()
