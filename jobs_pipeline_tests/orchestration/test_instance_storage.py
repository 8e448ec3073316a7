"""The Dagster instance the repository's `dagster.yaml` configures: SQLite files under
`DAGSTER_HOME` by default, pooled PostgreSQL storages when `DAGSTER_PG_URL` is set, the queued run
coordinator and run monitoring either way.

`instance_storage` swaps a private attribute of dagster-postgres; the version test below is the
tripwire for an upgrade, and the PostgreSQL test checks that the swap still took.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster
import dagster as dg
import dagster_postgres
import pytest
import sqlalchemy as sa
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage

from jobs_pipeline.orchestration import instance_storage
from jobs_pipeline.orchestration.instance_storage import (
    DEFAULT_URL_ENV,
    TESTED_DAGSTER_VERSION,
    TESTED_STORE_EVENT_DIGEST,
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
    dagster_postgres_url,
    source_digest,
)
from jobs_pipeline_tests.conftest import create_pg_database, drop_pg_database
from jobs_pipeline_tests.pg_cluster import ThrowawayCluster

INSTANCE_CONFIG = Path(__file__).resolve().parents[2] / "dagster.yaml"
TESTED_DAGSTER_POSTGRES_VERSION = "0.29.27"  # released together with dagster 1.13.27
POOL_SIZE = 2  # dagster.yaml


@dg.op
def say_hello() -> str:
    return "hello"


@dg.job
def hello_job() -> None:
    say_hello()


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Dagster home holding the repository's `dagster.yaml`, and no PostgreSQL URL."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(DEFAULT_URL_ENV, raising=False)
    return home


@pytest.fixture
def dagster_pg_url(dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`DAGSTER_PG_URL` set to a fresh, empty PostgreSQL database (dropped afterwards)."""
    name = f"jp_dagster_{uuid.uuid4().hex[:12]}"
    url = create_pg_database(name).set(drivername="postgresql")
    monkeypatch.setenv(DEFAULT_URL_ENV, url.render_as_string(hide_password=False))
    yield url.render_as_string(hide_password=False)
    drop_pg_database(name)


def assert_configured_like_production(instance: dg.DagsterInstance) -> None:
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, dg.QueuedRunCoordinator)
    assert coordinator.dequeue_use_threads
    assert coordinator.dequeue_num_workers == 4
    concurrency = instance.get_concurrency_config()
    assert concurrency.run_queue_config.max_concurrent_runs == 4
    assert [limit["key"] for limit in concurrency.run_queue_config.tag_concurrency_limits] == [
        "jobs_pipeline/job_type"
    ]
    assert concurrency.pool_config.default_pool_limit == 4
    assert instance.event_log_storage.supports_global_concurrency_limits
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_start_timeout_seconds == 120
    assert instance.run_monitoring_cancel_timeout_seconds == 60
    assert instance.run_monitoring_max_resume_run_attempts == 0


def run_and_read_back(instance: dg.DagsterInstance) -> None:
    result = hello_job.execute_in_process(instance=instance)

    assert result.success
    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
    stored = {entry.dagster_event_type for entry in instance.all_logs(result.run_id)}
    assert {
        dg.DagsterEventType.RUN_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.RUN_SUCCESS,
    } <= stored


def test_dagster_is_the_release_the_pooled_storages_were_written_for() -> None:
    # On failure: check that dagster-postgres still keeps its engine in `_engine` and builds it
    # with `create_pg_engine(postgres_url, ...)`, then move these versions and pyproject together.
    assert dagster.__version__ == TESTED_DAGSTER_VERSION
    assert dagster_postgres.__version__ == TESTED_DAGSTER_POSTGRES_VERSION
    # On failure: compare dagster-postgres's `store_event` with the copy in
    # `PooledPostgresEventLogStorage.store_event` (which runs the stock one until then).
    stock = dagster_postgres.PostgresEventLogStorage.store_event
    assert source_digest(stock) == TESTED_STORE_EVENT_DIGEST


def test_pooled_events_are_stored_without_notify_and_closed_connections_are_replaced(
    dagster_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = dg.DagsterInstance.get()
    try:
        engine = instance.event_log_storage._engine  # type: ignore[attr-defined]
        statements: list[str] = []
        sa.event.listen(
            engine, "before_cursor_execute", lambda _c, _cur, text, *_a: statements.append(text)
        )
        run_and_read_back(instance)
        assert any(text.startswith("INSERT INTO event_logs") for text in statements)
        assert not any("NOTIFY" in text for text in statements)

        # A pooled connection that the server closed a moment ago is replaced, not used: the
        # server's goodbye is waiting on its socket (no ping needed to see it).
        with engine.connect() as connection:
            pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        killer = sa.create_engine(dagster_pg_url, poolclass=sa.NullPool)
        with killer.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.dispose()
        monkeypatch.setattr(instance_storage, "PING_AFTER_IDLE_SECONDS", 3600.0)
        run_and_read_back(instance)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
    finally:
        instance.dispose()


def test_without_a_postgres_url_the_instance_uses_sqlite_files(dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, SqliteRunStorage)
        assert isinstance(instance.event_log_storage, SqliteEventLogStorage)
        assert isinstance(instance.schedule_storage, SqliteScheduleStorage)
        assert_configured_like_production(instance)
        run_and_read_back(instance)
    assert (dagster_home / "storage" / "history" / "runs.db").is_file()
    assert (dagster_home / "storage" / "schedules" / "schedules.db").is_file()


def test_with_a_postgres_url_the_instance_uses_pooled_postgres_storages(
    dagster_pg_url: str,
) -> None:
    instance = dg.DagsterInstance.get()
    try:
        storages = {
            PooledPostgresRunStorage: instance.run_storage,
            PooledPostgresEventLogStorage: instance.event_log_storage,
            PooledPostgresScheduleStorage: instance.schedule_storage,
        }
        for storage_class, storage in storages.items():
            assert type(storage) is storage_class
            engine = storage._engine  # type: ignore[attr-defined]
            assert isinstance(engine.pool, sa.pool.QueuePool)
            assert engine.pool.size() == POOL_SIZE
            assert engine.url.drivername == "postgresql+psycopg2"
        assert_configured_like_production(instance)

        run_and_read_back(instance)

        # Pooled: the run's events went through connections that stay open for the next ones.
        event_engine = instance.event_log_storage._engine  # type: ignore[attr-defined]
        assert event_engine.pool.checkedin() >= 1
        # dagster.yaml turns synchronous commit off for Dagster's own connections only.
        with event_engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW synchronous_commit").scalar() == "off"
    finally:
        instance.dispose()
    assert instance.run_storage._engine.pool.checkedin() == 0  # type: ignore[attr-defined]
    assert event_engine.pool.checkedin() == 0

    # The runs and their events are in the PostgreSQL database, not in files.
    engine = sa.create_engine(dagster_pg_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 1
            events = connection.execute(sa.text("SELECT count(*) FROM event_logs")).scalar_one()
            assert events > 0
    finally:
        engine.dispose()


def test_dagster_postgres_url_speaks_psycopg2_and_refuses_other_databases() -> None:
    assert (
        dagster_postgres_url("postgresql+psycopg://dagster:secret@db:5432/dagster")
        == "postgresql+psycopg2://dagster:secret@db:5432/dagster"
    )
    with pytest.raises(ValueError, match="must be a PostgreSQL URL, got sqlite"):
        dagster_postgres_url("sqlite:///dagster.sqlite")


@pytest.mark.slow
def test_the_pooled_storages_survive_a_postgres_restart(
    dagster_home: Path, private_pg_cluster: ThrowawayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The webserver and the daemon live for weeks: after the server restarts, their pooled
    # connections are dead, and the next statement must reconnect instead of failing.
    with sa.create_engine(
        private_pg_cluster.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
    ).connect() as admin:
        admin.exec_driver_sql("CREATE DATABASE dagster")
    monkeypatch.setenv(DEFAULT_URL_ENV, private_pg_cluster.url_for("dagster"))
    instance = dg.DagsterInstance.get()
    try:
        run_and_read_back(instance)
        # Every pool holds open connections now.
        for storage in (instance.run_storage, instance.event_log_storage):
            assert storage._engine.pool.checkedin() >= 1  # type: ignore[attr-defined]

        private_pg_cluster.restart()

        run_and_read_back(instance)
        assert len(instance.get_runs()) == 2
        assert instance.all_instigator_state() == []  # the schedule storage reconnects too
    finally:
        instance.dispose()
