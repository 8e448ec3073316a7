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
