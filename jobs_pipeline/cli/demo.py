"""`jobs-pipeline demo`: synthetic demo data."""

from __future__ import annotations

import argparse

from jobs_pipeline.cli.arguments import integer, open_perfdb, positive_int
from jobs_pipeline.cli.output import UsageError, short_time


def add_parser(groups: argparse._SubParsersAction) -> None:
    demo = groups.add_parser("demo", help="synthetic demo data").add_subparsers(
        dest="command", required=True
    )
    seed = demo.add_parser("seed", help="store a deterministic synthetic fleet")
    seed.add_argument(
        "--objects", type=positive_int("--objects"), default=5, help="turbines (default: 5)"
    )
    seed.add_argument(
        "--days", type=positive_int("--days"), default=14, help="days of data (default: 14)"
    )
    seed.add_argument("--seed", type=integer("--seed"), default=0, help="randomness (default: 0)")
    seed.set_defaults(handler=cmd_demo_seed)


def cmd_demo_seed(args: argparse.Namespace) -> None:
    from jobs_pipeline.demo.seeding import store_fleet
    from jobs_pipeline.demo.synthetic_fleet import generate_fleet
    from jobs_pipeline.jobs import upgrade_database

    try:
        fleet = generate_fleet(objects=args.objects, days=args.days, seed=args.seed)
    except ValueError as error:
        raise UsageError(f"demo seed: {error}") from None
    perfdb = open_perfdb(args, needs_schema=False)
    upgrade_database(perfdb)
    summary = store_fleet(perfdb, fleet)
    first, last = fleet.object_names[0], fleet.object_names[-1]
    print(
        f"seeded {summary.objects} objects ({first} .. {last}), {summary.features} features, "
        f"{summary.values} values from {short_time(fleet.start)} to {short_time(fleet.end)}, "
        f"{summary.alarms} alarm definitions ({', '.join(str(a.alarm_id) for a in fleet.alarms)})"
    )
    if summary.objects_kept:
        print(f"kept the values already stored for {', '.join(summary.objects_kept)}")
    if summary.alarms_kept:
        print(f"kept the alarm definitions {', '.join(map(str, summary.alarms_kept))} as they are")
