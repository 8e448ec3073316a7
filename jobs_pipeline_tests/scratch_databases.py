"""Scratch PostgreSQL databases for the tests and the benchmarks: created on a server given by an
admin URL (one allowed to create and drop databases), dropped afterwards with their connections.
Nothing here imports pytest: the benchmarks use it too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import URL


def admin_engine(admin_url: URL) -> sa.Engine:
    """An engine on the server of `admin_url` whose statements are not in a transaction (CREATE
    and DROP DATABASE cannot be)."""
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def create_database(admin_url: URL, name: str, template: str | None = None) -> URL:
    """A new database `name` on the server of `admin_url` (a copy of `template` if given)."""
    engine = admin_engine(admin_url)
    try:
        with engine.connect() as connection:
            clause = f" TEMPLATE {template}" if template else ""
            connection.exec_driver_sql(f"CREATE DATABASE {name}{clause}")
    finally:
        engine.dispose()
    return admin_url.set(database=name)


def drop_database(admin_url: URL, name: str) -> None:
    """Drops `name`, closing the connections still open on it."""
    engine = admin_engine(admin_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        engine.dispose()


@contextmanager
def scratch_database(admin_url: URL, prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the server of `admin_url`, dropped afterwards
    (connections and all)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_database(admin_url, name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        drop_database(admin_url, name)
