"""Engines for the performance database: the embedded SQLite default and PostgreSQL."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from jobs_pipeline import settings
from jobs_pipeline.perfdb.errors import Busy, ConnectionFailed, ConnectionLost, InvalidTransition

# How long a SQLite writer waits for another writer's lock before giving up with `Busy`.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
_READ_ONLY_OPTION = "perfdb_read_only"
# How every refusal by the database's rules starts (the triggers of `perfdb/rules_*.py`).
REFUSAL_PREFIX = "jobs_pipeline:"
_BUSY_TIMEOUTS: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()


def default_url() -> str:
    """`PERFDB_URL`, or the embedded SQLite file under the project's data folder."""
    return settings.PERFDB_URL.read()


def normalise_url(url: str | URL) -> URL:
    """Picks psycopg 3 for plain `postgresql://` URLs, whatever SQLAlchemy's default is."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def missing_sqlite_file(url: str | URL) -> bool:
    """A SQLite URL whose file does not exist (connecting would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return False
    return not Path(parsed.database).exists()


def redact(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


def create_perfdb_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    parsed = normalise_url(url or default_url())
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 2)
    kwargs.setdefault("max_overflow", 8)
    return sa.create_engine(parsed, **kwargs)


def _create_sqlite_engine(
    url: URL, *, busy_timeout_seconds: float = SQLITE_BUSY_TIMEOUT_SECONDS, **kwargs: Any
) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {"timeout": busy_timeout_seconds})
    engine = sa.create_engine(url, **kwargs)
    _BUSY_TIMEOUTS[engine] = busy_timeout_seconds

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_seconds * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A deferred transaction that later writes can fail with "database is locked" without
        # waiting; taking the write lock up front makes concurrent writers queue instead.
        # Readers (WAL) need no lock at all and must not wait behind a long import.
        if connection.get_execution_options().get(_READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@contextmanager
def begin(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """A transaction; `write=False` for one that only reads (on SQLite it then takes no write
    lock). A database that cannot be reached raises `ConnectionFailed`, a connection lost on the
    way `ConnectionLost` (one line that says whether anything can have been written); one that
    another writer keeps locked past the busy timeout raises `Busy`."""
    try:
        connection = engine.connect()
    except sa.exc.OperationalError as error:
        raise ConnectionFailed(
            f"cannot connect to the performance database {redact(engine.url)}: "
            f"{_first_line(error.orig)}"
        ) from error
    if not write:
        connection.execution_options(**{_READ_ONLY_OPTION: True})
    committing = False
    try:
        with connection, connection.begin():
            yield connection
            committing = True
    except sa.exc.DBAPIError as error:
        if error.connection_invalidated:
            raise ConnectionLost(_lost(engine, error, committing)) from error
        refusal = _first_line(error.orig)
        if isinstance(error, sa.exc.IntegrityError) and refusal.startswith(REFUSAL_PREFIX):
            # The database's rules refused the statement (`perfdb/rules_*.py`); nothing was written.
            raise InvalidTransition(refusal) from error
        if not isinstance(error, sa.exc.OperationalError):
            raise
        if "database is locked" in str(error.orig):
            seconds = _BUSY_TIMEOUTS.get(engine, SQLITE_BUSY_TIMEOUT_SECONDS)
            raise Busy(
                f"the performance database {redact(engine.url)} stayed locked by another "
                f"writer for {seconds:g} s: try again later"
            ) from error
        raise


def _lost(engine: Engine, error: sa.exc.DBAPIError, committing: bool) -> str:
    where = f"the connection to the performance database {redact(engine.url)} was lost"
    reason = _first_line(error.orig)
    # A server that answered the COMMIT with an error (it was shut down, the session was
    # terminated) did not commit; a connection that broke without an answer leaves it unknown.
    if committing and getattr(error.orig, "sqlstate", None) is None:
        return f"{where} while committing ({reason}): the changes may or may not have been written"
    return f"{where} ({reason}): nothing was written"


def _first_line(error: BaseException | None) -> str:
    text = str(error or "").strip()
    return text.splitlines()[0] if text else "unknown error"
