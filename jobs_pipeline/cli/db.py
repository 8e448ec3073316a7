"""`jobs-pipeline db`: the database schema."""

from __future__ import annotations

import argparse

from jobs_pipeline.cli.arguments import open_perfdb


def add_parser(groups: argparse._SubParsersAction) -> None:
    db = groups.add_parser("db", help="the database schema").add_subparsers(
        dest="command", required=True
    )
    db.add_parser("upgrade", help="apply migrations, register job types").set_defaults(
        handler=cmd_db_upgrade
    )
    roles = db.add_parser(
        "roles",
        help="PostgreSQL: create the frontend and worker roles, grant their rights",
        description="Creates the group roles jobs_pipeline_frontend (may write job rows, as "
        "docs/frontend.md says) and jobs_pipeline_worker (acts as runs, sensors and the "
        "reconciler), grants them their rights on this database's tables, and makes the "
        "named login roles members. Run it again after `db upgrade`.",
    )
    roles.add_argument(
        "--frontend",
        metavar="ROLE",
        action="append",
        default=[],
        help="an existing login role to make a frontend (repeatable)",
    )
    roles.add_argument(
        "--worker",
        metavar="ROLE",
        action="append",
        default=[],
        help="an existing login role to make a worker: Dagster's processes (repeatable)",
    )
    roles.set_defaults(handler=cmd_db_roles)


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import upgrade_database
    from jobs_pipeline.perfdb.migrate import current_revision, head_revision

    perfdb = open_perfdb(args, needs_schema=False)
    before = current_revision(perfdb.engine)
    upgrade_database(perfdb)
    head = head_revision()
    if before is None:
        print(f"performance database {perfdb.url}: created the schema (revision {head})")
    elif before != head:
        print(f"performance database {perfdb.url}: upgraded from revision {before} to {head}")
    else:
        print(f"performance database {perfdb.url}: already current (revision {head})")


def cmd_db_roles(args: argparse.Namespace) -> None:
    from jobs_pipeline.perfdb.roles import FRONTEND_ROLE, WORKER_ROLE, grant_roles

    perfdb = open_perfdb(args)
    grant_roles(perfdb.engine, frontends=args.frontend, workers=args.worker)
    for group, members in ((FRONTEND_ROLE, args.frontend), (WORKER_ROLE, args.worker)):
        named = f"; members added: {', '.join(members)}" if members else ""
        print(f"{group}: rights granted on {perfdb.url}{named}")
