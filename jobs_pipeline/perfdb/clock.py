"""The database's clock as a SQL expression: every timestamp the system writes and every
liveness decision uses it, never the clock of whichever process runs the statement."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from jobs_pipeline.perfdb.types import UTCDateTime


class database_now(sa.sql.expression.FunctionElement[datetime]):
    """The database's current time: `now()` on PostgreSQL (the transaction's start); on SQLite
    the current time as text in the format the models store."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(database_now)
def _now(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "now()"


@compiles(database_now, "sqlite")
def _sqlite_now(_element: Any, _compiler: Any, **_kw: Any) -> str:
    return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"


class seconds_since(sa.sql.expression.FunctionElement[float]):
    """How many seconds ago a stored timestamp was, by the database's clock."""

    type = sa.Float()
    inherit_cache = True


@compiles(seconds_since)
def _seconds_since(element: Any, compiler: Any, **kw: Any) -> str:
    (timestamp,) = element.clauses
    return f"EXTRACT(EPOCH FROM (now() - {compiler.process(timestamp, **kw)}))"


@compiles(seconds_since, "sqlite")
def _sqlite_seconds_since(element: Any, compiler: Any, **kw: Any) -> str:
    (timestamp,) = element.clauses
    return f"((julianday('now') - julianday({compiler.process(timestamp, **kw)})) * 86400.0)"
