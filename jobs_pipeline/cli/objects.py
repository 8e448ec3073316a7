"""`jobs-pipeline objects`: the turbines and inverters the database knows."""

from __future__ import annotations

import argparse

from jobs_pipeline.cli.arguments import open_perfdb
from jobs_pipeline.cli.output import add_json_flag, plural, print_json, print_table


def add_parser(groups: argparse._SubParsersAction) -> None:
    objects = groups.add_parser("objects", help="turbines, inverters: what jobs run over")
    commands = objects.add_subparsers(dest="command", required=True)
    object_list = commands.add_parser("list", help="the objects, by name")
    add_json_flag(object_list)
    object_list.set_defaults(handler=cmd_objects_list)


def cmd_objects_list(args: argparse.Namespace) -> None:
    names = open_perfdb(args).catalog.list_objects()
    if args.json:
        print_json([{"name": name} for name in names])
        return
    print_table(("object",), [(name,) for name in names])
    print(plural(len(names), "object"))
