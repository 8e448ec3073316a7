"""Scratch databases for the benchmarks: created for one run, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import make_url

# A server where the benchmarks may create and drop databases.
PG_ADMIN_URL = os.environ.get(
    "JOBS_PIPELINE_BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
)


def admin_engine() -> sa.Engine:
    return sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


@contextmanager
def scratch_postgresql(prefix: str = "jp_bench") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped on exit."""
    admin = admin_engine()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
