"""Dagster's own storage, chosen from the environment, with pooled PostgreSQL connections.

`dagster.yaml` names `EnvironmentStorage`: with `DAGSTER_PG_URL` set, runs, events and schedules
go to PostgreSQL; without it, to SQLite files under `$DAGSTER_HOME/storage`, so nothing needs
configuring for the embedded default.

The stock PostgreSQL storages open a new connection for every stored event (a `NullPool`
engine), which costs a run about two thirds of its per-step overhead. The subclasses here swap
that engine for a small pool once the base class has created its tables. They rely on the
private `_engine` attribute of dagster-postgres 0.29.27 (dagster 1.13.27); the test
`test_instance_storage.py` fails if an upgrade moves it.
"""

import os
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from dagster import Field, IntSource, StringSource
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.event_log import EventLogStorage
from dagster._core.storage.runs import RunStorage
from dagster._core.storage.schedules import ScheduleStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine

TESTED_DAGSTER_VERSION = "1.13.27"
DEFAULT_URL_ENV = "DAGSTER_PG_URL"


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
        pool_pre_ping=True,
        pool_recycle=3600,
        connect_args=options,
    )


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


class PooledPostgresEventLogStorage(_PooledEngine, PostgresEventLogStorage):
    pass


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
        url = os.environ.get(postgres_url_env, "").strip()
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
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise RuntimeError("DAGSTER_HOME is not set: it says where Dagster keeps its SQLite files")
    return home
