"""Database fixtures: one fresh performance database per test, on SQLite and on PostgreSQL.

Both backends are migrated once per session into a template (a file for SQLite, a template
database for PostgreSQL) that each test clones. PostgreSQL is never skipped: if it cannot be
reached the tests fail. `JOBS_PIPELINE_TEST_PG_URL` points at a server where the tests may
create and drop databases (default: the local server).

Fixtures shared by test modules that no deeper conftest.py covers live here too: `object_ids`
(the rows of perfdb/queue_jobs.py's jobs), `seeded_db` (orchestration/alarm_fleet.py's fleet) and
`fleet` (the CLI tests' objects and alarms).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from jobs_pipeline.jobs import upgrade_database
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline_tests.cli_fleet import NASTY
from jobs_pipeline_tests.cli_runner import Cli
from jobs_pipeline_tests.orchestration.alarm_fleet import seed_fleet
from jobs_pipeline_tests.perfdb.queue_jobs import ALARM_ID, OBJECTS
from jobs_pipeline_tests.pg_cluster import ThrowawayCluster
from jobs_pipeline_tests.scratch_databases import admin_engine, create_database, drop_database

PG_ADMIN_URL = make_url(
    os.environ.get("JOBS_PIPELINE_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres")
)
BACKENDS = ("sqlite", "postgresql")


def _admin_engine() -> sa.Engine:
    return admin_engine(PG_ADMIN_URL)


def create_pg_database(name: str, template: str | None = None) -> URL:
    return create_database(PG_ADMIN_URL, name, template)


def drop_pg_database(name: str) -> None:
    drop_database(PG_ADMIN_URL, name)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "perfdb.sqlite"
    perfdb = PerfDB.connect(f"sqlite:///{path}")
    upgrade_database(perfdb)
    # On the DBAPI connection: the engine wraps every SQLAlchemy connection in BEGIN IMMEDIATE,
    # and SQLite refuses a checkpoint inside a write transaction ("database table is locked").
    raw = perfdb.engine.raw_connection()
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    perfdb.dispose()
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = _unique("jp_template")
    url = create_pg_database(name)
    perfdb = PerfDB.connect(url)
    upgrade_database(perfdb)
    perfdb.dispose()
    yield name
    drop_pg_database(name)


def _sqlite_url(template: Path, directory: Path) -> str:
    target = directory / "perfdb.sqlite"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=BACKENDS)
def perfdb_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated performance database on each backend."""
    if request.param == "sqlite":
        yield _sqlite_url(request.getfixturevalue("sqlite_template"), tmp_path)
        return
    name = _unique("jp_test")
    url = create_pg_database(name, template=request.getfixturevalue("pg_template"))
    yield url.render_as_string(hide_password=False)
    drop_pg_database(name)


@pytest.fixture
def perfdb(perfdb_url: str) -> Iterator[PerfDB]:
    db = PerfDB.connect(perfdb_url)
    yield db
    db.dispose()


@pytest.fixture
def object_ids(perfdb: PerfDB) -> dict[str, int]:
    """The objects and the alarm of the jobs in `perfdb/queue_jobs.py`."""
    ids = perfdb.catalog.ensure_objects(OBJECTS)
    perfdb.catalog.ensure_feature("active_power", unit="kW")
    perfdb.catalog.define_alarm(
        alarm_id=ALARM_ID,
        name="High power",
        feature="active_power",
        operator=">",
        threshold=2000.0,
    )
    return ids


@pytest.fixture
def seeded_db(perfdb: PerfDB) -> PerfDB:
    """The fleet described at the top of orchestration/alarm_fleet.py, on each backend."""
    return seed_fleet(perfdb)


@pytest.fixture
def fleet(perfdb: PerfDB) -> dict[str, int]:
    """Objects LAN-01, LAN-02 and the nasty name; feature active_power; alarms 101 and 102."""
    ids = perfdb.catalog.ensure_objects(["LAN-01", "LAN-02", NASTY])
    perfdb.catalog.ensure_feature("active_power", unit="kW")
    perfdb.catalog.define_alarm(
        alarm_id=101, name="High power", feature="active_power", operator=">", threshold=2000.0
    )
    perfdb.catalog.define_alarm(
        alarm_id=102, name="Low power", feature="active_power", operator="<", threshold=-10.0
    )
    return ids


@pytest.fixture
def cli(perfdb_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    """The `jobs-pipeline` command run in this process on the test's database."""
    return Cli(perfdb_url, capsys)


@pytest.fixture
def pg_perfdb_url(pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL performance database only (tests of PostgreSQL-specific behaviour)."""
    name = _unique("jp_test")
    url = create_pg_database(name, template=pg_template)
    yield url.render_as_string(hide_password=False)
    drop_pg_database(name)


@pytest.fixture
def empty_perfdb_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on the backend named by the test's `backend` parameter."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    name = _unique("jp_empty")
    url = create_pg_database(name)
    yield url.render_as_string(hide_password=False)
    drop_pg_database(name)


@pytest.fixture
def private_pg_cluster() -> Iterator[ThrowawayCluster]:
    """A started PostgreSQL server of the test's own, for tests that stop, restart or kill one
    (never the shared server). Stopped and removed afterwards, whatever the test did to it.

    Its folder is a fresh one directly under the system's temporary folder, not under pytest's:
    pytest makes `/tmp/pytest-of-<user>` private (0700) whenever a session starts, which would
    lock the `postgres` user out of a cluster that is running at that moment."""
    parent = Path(tempfile.mkdtemp(prefix="jobs_pipeline_pg_"))
    try:
        with ThrowawayCluster(parent / "pg") as cluster:
            yield cluster
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, so that they overlap the many short ones instead of being the last ones
    left (the order is otherwise kept). With `--dist worksteal` (scripts/test) an idle worker
    takes tests queued for the other, so the short ones even the end out."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
