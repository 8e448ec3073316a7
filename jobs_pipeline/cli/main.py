"""The `jobs-pipeline` command.

The parser is built from each noun's module (`db`, `demo`, `features`, `objects`, `alarms`,
`job`, `schedule`), which imports nothing heavy before the arguments are parsed; `output` maps
failures to exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from jobs_pipeline.cli import alarms, db, demo, features, job, objects, schedule
from jobs_pipeline.cli.output import Parser, UsageError, error_line, run_command


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = Parser(prog="jobs-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", metavar="URL", help="performance database URL (default: $PERFDB_URL or SQLite)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    groups = parser.add_subparsers(dest="group", required=True, parser_class=Parser)
    db.add_parser(groups)
    demo.add_parser(groups)
    features.add_parser(groups)
    objects.add_parser(groups)
    alarms.add_parser(groups)
    job.add_parser(groups, argv)
    schedule.add_parser(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        arguments = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(arguments).parse_args(arguments)
    except UsageError as error:
        print(error_line(error), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args.opened = []
    try:
        return run_command(args)
    finally:
        for perfdb in args.opened:  # main() may run many times in one process
            perfdb.dispose()
