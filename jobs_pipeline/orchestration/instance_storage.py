"""Dagster's own storage, chosen from the environment, with pooled PostgreSQL connections.

`dagster.yaml` names `EnvironmentStorage`: with `DAGSTER_PG_URL` set, runs, events and schedules
go to PostgreSQL; without it, to SQLite files under `$DAGSTER_HOME/storage`, so nothing needs
configuring for the embedded default.

The stock PostgreSQL storages open a new connection for every stored event (a `NullPool`
engine), which costs a run about two thirds of its per-step overhead. The subclasses here swap
that engine for a small pool once the base class has created its tables. They rely on the
private `_engine` attribute of dagster-postgres 0.29.27 (dagster 1.13.27); the test
`test_instance_storage.py` fails if an upgrade moves it.

Two round trips less per stored event, and per concurrency slot statement: a pooled connection
is pinged only when it comes back after a second or more of rest, or when the server sent it
something (a server that restarts or ends a backend closes its connections), not at every
checkout; and the
event storage stores an event without the `NOTIFY` that dagster-postgres keeps for old
webservers only (nothing in Dagster 1.13 listens). The second copies dagster-postgres's
`store_event`; it is used only while that function's source is the one copied (else the stock
one runs), and the same test is its tripwire.
"""

import dataclasses
import hashlib
import inspect
import os
import select
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from dagster import Field, IntSource, StringSource
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log import EventLogStorage
from dagster._core.storage.runs import RunStorage
from dagster._core.storage.schedules import ScheduleStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.event_log import event_log as stock_event_log
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine

from jobs_pipeline import settings

TESTED_DAGSTER_VERSION = "1.13.27"
DEFAULT_URL_ENV = settings.DAGSTER_PG_URL.name
# sha256 (first 16 hex digits) of the source of dagster-postgres 0.29.27's
# `PostgresEventLogStorage.store_event`, which `PooledPostgresEventLogStorage` copies.
TESTED_STORE_EVENT_DIGEST = "4a2e37e5871bf2c8"
# A connection back in the pool for less than this is handed out again without a ping.
PING_AFTER_IDLE_SECONDS = 1.0


def source_digest(function: Any) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]


def dagster_postgres_url(url: str) -> str:
    """dagster-postgres speaks psycopg2 (its NOTIFY statement fails under psycopg 3)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{DEFAULT_URL_ENV} must be a PostgreSQL URL, got {parsed.drivername}")
    return parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


def _pool(storage: Any, pool_size: int, synchronous_commit: bool) -> None:
    """Replaces the storage's per-statement engine with a pooled one."""
    storage._engine.dispose()
    # Without synchronous commit an event insert does not wait for its WAL flush; a server
    # crash can lose the last fraction of a second of run events, never corrupt them.
    options = {} if synchronous_commit else {"options": "-c synchronous_commit=off"}
    storage._engine = create_pg_engine(
        storage.postgres_url,
        getattr(storage, "_token_provider", None),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.QueuePool,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_recycle=3600,
        connect_args=options,
    )
    _ping_after_rest(storage._engine)


def _has_input(dbapi_connection: Any) -> bool:
    """Whether the server sent something to an idle connection: nothing is expected, so it is
    most likely closing it (a restart, a terminated backend). Costs no round trip."""
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError, AttributeError):
        return True
    return bool(readable)


def _ping_after_rest(engine: sa.Engine) -> None:
    """SQLAlchemy's `pool_pre_ping`, for connections that rested: a ping that fails makes the
    pool drop that connection and hand out a new one, as `pool_pre_ping` does."""

    @sa.event.listens_for(engine, "checkin")
    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["jobs_pipeline_checked_in"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("jobs_pipeline_checked_in")
        rested = since is None or time.monotonic() - since >= PING_AFTER_IDLE_SECONDS
        if not rested and not _has_input(dbapi_connection):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sa.exc.DisconnectionError(f"pooled connection is gone: {error}") from error
        if not alive:
            raise sa.exc.DisconnectionError("pooled connection is gone")


class _PooledEngine:
    """Mixin for a dagster-postgres storage: same tables and queries, pooled connections."""

    _engine: Any

    def __init__(
        self,
        postgres_url: str,
        pool_size: int = 2,
        synchronous_commit: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(postgres_url, **kwargs)  # type: ignore[call-arg]
        _pool(self, pool_size, synchronous_commit)

    def dispose(self) -> None:
        super().dispose()  # type: ignore[misc]
        self._engine.dispose()  # the stock engine holds no connections; the pool does


class PooledPostgresRunStorage(_PooledEngine, PostgresRunStorage):
    pass


_STOCK_STORE_EVENT = PostgresEventLogStorage.store_event
_STORE_EVENT_AS_COPIED = source_digest(_STOCK_STORE_EVENT) == TESTED_STORE_EVENT_DIGEST


class PooledPostgresEventLogStorage(_PooledEngine, PostgresEventLogStorage):
    def store_event(self, event: EventLogEntry) -> None:
        if not _STORE_EVENT_AS_COPIED:
            _STOCK_STORE_EVENT(self, event)
            return
        # dagster-postgres 0.29.27's `store_event`, without its NOTIFY.
        insert_event_statement = self.prepare_insert_event(event)
        with self._connect() as conn:
            result = conn.execute(
                insert_event_statement.returning(stock_event_log.SqlEventLogStorageTable.c.id)
            )
            event_id = int(result.scalar_one())
        dagster_event = event.dagster_event
        if (
            dagster_event is not None
            and dagster_event.event_type in stock_event_log.ASSET_EVENTS
            and dagster_event.asset_key
        ):
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event], [event_id])
                self._store_asset_event(conn, event, event_id)
        if dagster_event is not None and dagster_event.event_type in (
            stock_event_log.ASSET_CHECK_EVENTS
        ):
            self.store_asset_check_event(event, event_id)


class PooledPostgresScheduleStorage(_PooledEngine, PostgresScheduleStorage):
    pass


class EnvironmentStorage(DagsterStorage, ConfigurableClass):
    """PostgreSQL (pooled) when the URL variable is set, else SQLite under `sqlite_base_dir`."""

    def __init__(
        self,
        postgres_url_env: str = DEFAULT_URL_ENV,
        sqlite_base_dir: str | None = None,
        pool_size: int = 2,
        synchronous_commit: bool = True,
        inst_data: ConfigurableClassData | None = None,
    ) -> None:
        self._inst_data = inst_data
        # dagster.yaml may name another variable than the setting's for the same purpose.
        url = dataclasses.replace(settings.DAGSTER_PG_URL, name=postgres_url_env).read()
        if url:
            url = dagster_postgres_url(url)
            self.backend = "postgresql"
            pooled: dict[str, Any] = {
                "pool_size": pool_size,
                "synchronous_commit": synchronous_commit,
            }
            self._run_storage: RunStorage = PooledPostgresRunStorage(url, **pooled)
            self._event_log_storage: EventLogStorage = PooledPostgresEventLogStorage(url, **pooled)
            self._schedule_storage: ScheduleStorage = PooledPostgresScheduleStorage(url, **pooled)
        else:
            base_dir = sqlite_base_dir or os.path.join(_dagster_home(), "storage")
            sqlite = DagsterSqliteStorage.from_local(base_dir)
            self.backend = "sqlite"
            self._run_storage = sqlite.run_storage
            self._event_log_storage = sqlite.event_log_storage
            self._schedule_storage = sqlite.schedule_storage
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "postgres_url_env": Field(str, is_required=False, default_value=DEFAULT_URL_ENV),
            "sqlite_base_dir": Field(StringSource, is_required=False),
            "pool_size": Field(IntSource, is_required=False, default_value=2),
            "synchronous_commit": Field(bool, is_required=False, default_value=True),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> "EnvironmentStorage":
        return cls(inst_data=inst_data, **config_value)

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            if not storage.has_instance:
                storage.register_instance(instance)

    @property
    def event_log_storage(self) -> EventLogStorage:
        return self._event_log_storage

    @property
    def run_storage(self) -> RunStorage:
        return self._run_storage

    @property
    def schedule_storage(self) -> ScheduleStorage:
        return self._schedule_storage


def _dagster_home() -> str:
    if not settings.DAGSTER_HOME.is_set():
        raise RuntimeError("DAGSTER_HOME is not set: it says where Dagster keeps its SQLite files")
    return str(settings.DAGSTER_HOME.read())
