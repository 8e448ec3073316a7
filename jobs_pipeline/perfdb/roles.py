"""PostgreSQL roles: what a frontend may touch, and who may act as the system.

Two group roles (NOLOGIN): members of `jobs_pipeline_frontend` read everything and write only
what a frontend may write (job rows; the triggers decide which moves), members of
`jobs_pipeline_worker` act as runs, sensors and the reconciler (the state triggers check that
membership for every system move). Login roles are made members of one of them:
`jobs-pipeline db roles --frontend ana --worker dagster`.

SQLite has no roles: whoever can open the file can do everything, and the triggers still keep
every move a frontend makes to the rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError

FRONTEND_ROLE = "jobs_pipeline_frontend"
WORKER_ROLE = "jobs_pipeline_worker"

# What a frontend may write: job rows (the state triggers decide which writes; their own writes
# to steps and history run with the rights of the migration's owner) and schedules.
_FRONTEND_GRANTS = (
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT INSERT, UPDATE, DELETE ON job_instances, job_schedules TO {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
)
_WORKER_GRANTS = (
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


def _quote(connection: Connection, name: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(name)


def ensure_group_role(connection: Connection, name: str) -> None:
    """Creates a NOLOGIN role unless it exists; roles are shared by every database of the
    server, so another database's migration may be creating it at the same moment."""
    exists = connection.execute(
        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}
    ).first()
    if exists is None:
        connection.exec_driver_sql(
            f"DO $$ BEGIN CREATE ROLE {_quote(connection, name)} NOLOGIN; "
            "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        )


def grant_roles(
    engine: Engine, *, frontends: Sequence[str] = (), workers: Sequence[str] = ()
) -> None:
    """Creates both group roles if needed, grants them their rights on this database's tables,
    and makes the named login roles members. Repeatable; run it again after `db upgrade` adds
    tables."""
    if engine.dialect.name != "postgresql":
        raise InputError("roles exist only on PostgreSQL: a SQLite database has no users")
    with begin(engine) as connection:
        for group, grants in ((FRONTEND_ROLE, _FRONTEND_GRANTS), (WORKER_ROLE, _WORKER_GRANTS)):
            ensure_group_role(connection, group)
            for grant in grants:
                connection.exec_driver_sql(grant.format(role=_quote(connection, group)))
        for group, members in ((FRONTEND_ROLE, frontends), (WORKER_ROLE, workers)):
            for member in members:
                _check_login_role(connection, member)
                connection.exec_driver_sql(
                    f"GRANT {_quote(connection, group)} TO {_quote(connection, member)}"
                )


def _check_login_role(connection: Connection, name: str) -> None:
    exists = connection.execute(
        sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}
    ).first()
    if exists is None:
        raise InputError(
            f"role {name!r} does not exist: create it first (CREATE ROLE {name} LOGIN ...)"
        )
