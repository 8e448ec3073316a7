"""Alembic environment: runs on the connection handed over by `jobs_pipeline.perfdb.migrate`."""

from __future__ import annotations

from alembic import context

from jobs_pipeline.perfdb.engine import create_perfdb_engine
from jobs_pipeline.perfdb.models import Base

target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    # `alembic -x url=...` from a shell, e.g. to write a new revision.
    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = create_perfdb_engine(url)
    with engine.connect() as own_connection:
        _run(own_connection)
