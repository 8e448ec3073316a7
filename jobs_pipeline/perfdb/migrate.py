"""Applies the Alembic migrations that build the performance database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import PerfDBError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class ForeignKeyViolation(PerfDBError):
    """A migration left rows that refer to rows that do not exist."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, move: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    if engine.dialect.name == "sqlite":
        _migrate_sqlite(engine, config, move, revision)
        return
    with begin(engine) as connection:
        config.attributes["connection"] = connection
        move(config, revision)


def _migrate_sqlite(
    engine: Engine, config: Config, move: Callable[[Config, str], None], revision: str
) -> None:
    """SQLite migrations rebuild a table by copying it, dropping it and renaming the copy; with
    foreign keys on, that drop cascade-deletes every row referring to the table (a job's steps
    and history). They are turned off for the migration, which SQLite allows only outside a
    transaction, and `PRAGMA foreign_key_check` afterwards refuses a migration that left a
    dangling reference (nothing is written then)."""
    with engine.connect() as connection:
        # On the driver's connection: a statement through SQLAlchemy would begin a transaction.
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA foreign_keys = OFF")
        try:
            with connection.begin():
                # The rebuild's rename must not re-check the triggers and views that name the
                # table being rebuilt (they fail with "no such table" under the modern ALTER).
                connection.exec_driver_sql("PRAGMA legacy_alter_table = ON")
                config.attributes["connection"] = connection
                move(config, revision)
                dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if dangling:
                    table, rowid, parent, _ = dangling[0]
                    raise ForeignKeyViolation(
                        f"migration to {revision} left {len(dangling)} rows referring to missing "
                        f"rows (first: {table} row {rowid} refers to a missing {parent} row); "
                        f"nothing was changed"
                    )
        finally:
            driver.execute("PRAGMA legacy_alter_table = OFF")
            driver.execute("PRAGMA foreign_keys = ON")


def current_revision(engine: Engine) -> str | None:
    with begin(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
