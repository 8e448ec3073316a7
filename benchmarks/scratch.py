"""Scratch databases for the benchmarks: created for one run, dropped afterwards.

The benchmarks share the test suite's helpers for scratch databases and deployments
(`jobs_pipeline_tests`, which is not installed with the project): importing this module puts the
repository root at the end of `sys.path`, so that `python benchmarks/NAME.py` reaches them while
`jobs_pipeline` still comes from the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.append(str(Path(__file__).resolve().parents[1]))  # the repository root

from jobs_pipeline_tests.scratch_databases import admin_engine as server_admin_engine
from jobs_pipeline_tests.scratch_databases import create_database, drop_database, scratch_database

# A server where the benchmarks may create and drop databases.
PG_ADMIN_URL = make_url(
    os.environ.get(
        "JOBS_PIPELINE_BENCH_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres"
    )
)


def admin_engine() -> sa.Engine:
    return server_admin_engine(PG_ADMIN_URL)


@contextmanager
def scratch_postgresql(prefix: str = "jp_bench") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped on exit."""
    with scratch_database(PG_ADMIN_URL, prefix) as url:
        yield url


@contextmanager
def postgresql_copy(source_url: str, suffix: str) -> Iterator[str]:
    """The URL of a copy of the database at `source_url` (made with it as template: page for
    page), dropped on exit. The source must have no open connections."""
    source = make_url(source_url)
    name = f"{source.database}_{suffix}"
    create_database(PG_ADMIN_URL, name, template=source.database)
    try:
        yield source.set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(PG_ADMIN_URL, name)
