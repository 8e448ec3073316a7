"""Applies the Alembic migrations that build the performance database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from jobs_pipeline.perfdb.engine import begin

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with begin(engine) as connection:
        if connection.dialect.name == "sqlite":
            # SQLite migrations rebuild a table under a temporary name and rename it back; with
            # the modern ALTER TABLE, that rename re-checks every trigger and view of the schema
            # and fails on those that name the table being rebuilt ("no such table").
            connection.exec_driver_sql("PRAGMA legacy_alter_table = ON")
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with begin(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
