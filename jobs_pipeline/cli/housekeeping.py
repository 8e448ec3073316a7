"""`jobs-pipeline housekeeping`: removes ended jobs past their keep time with their steps,
history and Dagster runs; results stay."""

from __future__ import annotations

import argparse
from datetime import timedelta

from jobs_pipeline.cli.arguments import open_perfdb
from jobs_pipeline.cli.output import UsageError, add_json_flag, print_json


def _duration(text: str) -> timedelta:
    from jobs_pipeline.settings import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(groups: argparse._SubParsersAction) -> None:
    command = groups.add_parser(
        "housekeeping",
        help="remove ended jobs past their keep time, with their steps, history and Dagster "
        "runs (results stay)",
    )
    command.add_argument(
        "--dry-run", action="store_true", help="print what would be removed and change nothing"
    )
    command.add_argument(
        "--keep-finished",
        type=_duration,
        metavar="DURATION",
        help="keep Finished jobs this long after they ended (30s, 15min, 2h, 90d; default "
        "$JOBS_PIPELINE_KEEP_FINISHED or 90d)",
    )
    command.add_argument(
        "--keep-failed",
        type=_duration,
        metavar="DURATION",
        help="keep Failed jobs this long after they ended (default $JOBS_PIPELINE_KEEP_FAILED "
        "or 365d)",
    )
    add_json_flag(command)
    command.set_defaults(handler=cmd_housekeeping)


def cmd_housekeeping(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from jobs_pipeline.perfdb.housekeeping import Retention

    try:
        retention = Retention.from_env()
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.keep_finished is not None:
        retention = replace(retention, keep_finished=args.keep_finished)
    if args.keep_failed is not None:
        retention = replace(retention, keep_failed=args.keep_failed)
    perfdb = open_perfdb(args)

    from dagster import DagsterInstance

    from jobs_pipeline.orchestration.housekeeping import run_housekeeping
    from jobs_pipeline.orchestration.launch import ensure_dagster_home

    ensure_dagster_home()
    with DagsterInstance.get() as instance:
        report = run_housekeeping(perfdb, instance, retention, dry_run=args.dry_run)
    if args.json:
        print_json(report.as_dict())
        return
    print(f"{retention.describe()}: {report.summary()}")
