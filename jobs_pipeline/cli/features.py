"""`jobs-pipeline features`: measured features, their import and sampling periods."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from jobs_pipeline.cli.arguments import open_perfdb, positive_int, sampling_period, timestamp
from jobs_pipeline.cli.output import (
    UsageError,
    add_json_flag,
    iso,
    plural,
    print_json,
    print_table,
    seconds_text,
    short_time,
)

if TYPE_CHECKING:
    from jobs_pipeline.perfdb.records import ImportSummary


def add_parser(groups: argparse._SubParsersAction) -> None:
    features = groups.add_parser("features", help="measured features").add_subparsers(
        dest="command", required=True
    )
    _add_import(features)
    feature_list = features.add_parser(
        "list", help="features: unit, sampling period, objects, samples, first and last"
    )
    add_json_flag(feature_list)
    feature_list.set_defaults(handler=cmd_features_list)
    set_period = features.add_parser("set-period", help="change a feature's sampling period")
    set_period.add_argument("name", metavar="NAME", help="the feature (see 'features list')")
    set_period.add_argument(
        "seconds",
        type=sampling_period("SECONDS"),
        metavar="SECONDS",
        help="the new sampling period in whole seconds (e.g. 600 for 10 minutes)",
    )
    set_period.set_defaults(handler=cmd_features_set_period)
    _add_derive(features)
    _add_values(features)


def _add_import(features: argparse._SubParsersAction) -> None:
    feature_import = features.add_parser(
        "import", help="import object,feature,timestamp,value from CSV or Parquet (streamed)"
    )
    feature_import.add_argument(
        "file",
        metavar="FILE.csv|FILE.parquet",
        help="columns object, feature, timestamp (ISO 8601; naive is UTC), value (empty: no data)",
    )
    feature_import.add_argument(
        "--sampling-period",
        type=sampling_period("--sampling-period"),
        metavar="SECONDS",
        help="sampling period of the features this import creates (default 600)",
    )
    feature_import.add_argument(
        "--chunk-rows",
        type=positive_int("--chunk-rows"),
        metavar="N",
        help="values read and written at a time: memory against speed (default 400000)",
    )
    feature_import.set_defaults(handler=cmd_features_import)


def _add_derive(features: argparse._SubParsersAction) -> None:
    derive = features.add_parser(
        "derive", help="define (or redefine) a feature computed from others by an expression"
    )
    derive.add_argument("name", metavar="NAME", help="the derived feature's name")
    derive.add_argument(
        "--expression",
        required=True,
        metavar="EXPR",
        help="arithmetic over feature names: + - * / **, parentheses, numbers, comparisons, "
        "abs(x), min(x, y, ...), max(x, y, ...), where(condition, then, else); "
        "e.g. 'dc_voltage * dc_current / 1000'",
    )
    derive.add_argument(
        "--unit", metavar="U", help="unit of the derived values (default: none, or unchanged)"
    )
    derive.add_argument(
        "--sampling-period",
        type=sampling_period("--sampling-period"),
        metavar="S",
        help="sampling period in whole seconds (default: that of the expression's first "
        "feature, or unchanged)",
    )
    derive.set_defaults(handler=cmd_features_derive)


def _add_values(features: argparse._SubParsersAction) -> None:
    values = features.add_parser("values", help="the stored values of one object's feature")
    values.add_argument("--object", required=True, metavar="O", help="the object's name")
    values.add_argument("--feature", required=True, metavar="F", help="the feature's name")
    values.add_argument(
        "--start",
        type=timestamp("--start"),
        metavar="T",
        help="first timestamp (inclusive): ISO 8601, naive is UTC (default: the first value)",
    )
    values.add_argument(
        "--end",
        type=timestamp("--end"),
        metavar="T",
        help="end (exclusive): ISO 8601, naive is UTC (default: after the last value)",
    )
    shape = values.add_mutually_exclusive_group()
    shape.add_argument(
        "--json",
        action="store_true",
        help='print a JSON list of {"timestamp", "value"} on stdout (null: no data)',
    )
    shape.add_argument(
        "--csv", action="store_true", help="print CSV (timestamp,value; empty: no data)"
    )
    values.set_defaults(handler=cmd_features_values)


def cmd_features_import(args: argparse.Namespace) -> None:
    from jobs_pipeline import cli
    from jobs_pipeline.perfdb.catalog import DEFAULT_SAMPLING_PERIOD
    from jobs_pipeline.perfdb.feature_files import CHUNK_ROWS

    perfdb = open_perfdb(args)
    # The progress display is looked up on the package at call time: replaced there, it shows
    # what an import reports after each chunk.
    with cli._import_progress(args.file) as on_chunk:
        summary = perfdb.values.import_csv(
            args.file,
            sampling_period=args.sampling_period,
            chunk_rows=args.chunk_rows or CHUNK_ROWS,
            on_chunk=on_chunk,
        )
    created = ""
    if summary.objects_created or summary.features_created:
        created = (
            f" (new objects: {len(summary.objects_created)}, "
            f"new features: {len(summary.features_created)}"
        )
        if summary.features_created:
            period = args.sampling_period or DEFAULT_SAMPLING_PERIOD
            created += f", sampling period {seconds_text(period)}"
        created += ")"
    print(
        f"imported {plural(summary.rows, 'value')} from {args.file}: "
        f"{_new_and_changed(summary)}{created}"
    )


# Files smaller than this import in a blink: no progress display.
PROGRESS_MIN_BYTES = 20_000_000


@contextmanager
def _import_progress(path: str) -> Iterator[Callable[[int], object] | None]:
    """Rows imported so far, their rate and the time, on a terminal for a big file."""
    try:
        big = os.path.getsize(path) >= PROGRESS_MIN_BYTES
    except OSError:
        big = False
    if not (big and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn(f"importing {os.path.basename(path)}: {{task.completed:,.0f}} rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
    ) as progress:
        task = progress.add_task("import", total=None, rate="")
        started = time.monotonic()

        def on_chunk(rows: int) -> None:
            progress.advance(task, rows)
            done = progress.tasks[0].completed
            elapsed = max(time.monotonic() - started, 1e-9)
            progress.update(task, rate=f"{done / elapsed:,.0f} rows/s")

        yield on_chunk


def _new_and_changed(summary: ImportSummary) -> str:
    changed = f", {summary.changed_values} changed" if summary.changed_values else ""
    return f"{summary.new_values} new{changed}"


def cmd_features_list(args: argparse.Namespace) -> None:
    overview = open_perfdb(args).catalog.feature_overview()
    if args.json:
        print_json(
            [
                {
                    "name": item.feature.name,
                    "unit": item.feature.unit,
                    "sampling_period_seconds": int(item.feature.sampling_period.total_seconds()),
                    "objects": item.objects,
                    "samples": item.samples,
                    "first": iso(item.first),
                    "last": iso(item.last),
                }
                for item in overview
            ]
        )
        return
    print_table(
        ("feature", "unit", "sampling period", "objects", "samples", "first", "last"),
        [
            (
                item.feature.name,
                item.feature.unit,
                seconds_text(item.feature.sampling_period),
                item.objects,
                item.samples,
                short_time(item.first),
                short_time(item.last),
            )
            for item in overview
        ],
    )


def cmd_features_set_period(args: argparse.Namespace) -> None:
    before, after = open_perfdb(args).catalog.set_sampling_period(args.name, args.seconds)
    print(
        f"feature {after.name!r}: sampling period {seconds_text(before.sampling_period)} -> "
        f"{seconds_text(after.sampling_period)}"
    )


def cmd_features_derive(args: argparse.Namespace) -> None:
    definition = open_perfdb(args).derived.define(
        args.name, args.expression, unit=args.unit, sampling_period=args.sampling_period
    )
    feature = definition.feature
    unit = f" [{feature.unit}]" if feature.unit else ""
    print(
        f"derived feature {feature.name!r}{unit} = {definition.expression} "
        f"(sampling period {seconds_text(feature.sampling_period)})"
    )


# Bounds of "every value" for a read without --start or --end.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def cmd_features_values(args: argparse.Namespace) -> None:
    import math

    perfdb = open_perfdb(args)
    object_id = perfdb.catalog.object_ids([args.object])[args.object]
    feature = perfdb.catalog.get_feature(args.feature)
    start, end = args.start or _EARLIEST, args.end or _LATEST
    if start >= end:
        raise UsageError(f"--start {iso(start)} must be before --end {iso(end)}")
    series = perfdb.values.read(object_id, feature.id, start, end)
    rows = [
        (stamp.to_pydatetime(), None if math.isnan(value) else float(value))
        for stamp, value in series.items()
    ]
    if args.json:
        print_json([{"timestamp": iso(stamp), "value": value} for stamp, value in rows])
    elif args.csv:
        print("timestamp,value")
        for stamp, value in rows:
            print(f"{iso(stamp)},{'' if value is None else repr(value)}")
    else:
        print_table(
            ("timestamp", "value"),
            [(short_time(stamp), "" if value is None else f"{value:g}") for stamp, value in rows],
        )
