"""`jobs-pipeline alarms`: alarm definitions, their occurrences and timeline plots."""

from __future__ import annotations

import argparse
from datetime import timedelta

from jobs_pipeline.cli.arguments import duration, finite_float, integer, open_perfdb
from jobs_pipeline.cli.output import (
    UsageError,
    add_json_flag,
    plural,
    print_json,
    print_table,
    short_time,
)


def add_parser(groups: argparse._SubParsersAction) -> None:
    alarms = groups.add_parser("alarms", help="alarm definitions and occurrences").add_subparsers(
        dest="command", required=True
    )
    define = alarms.add_parser("define", help="create or replace an alarm definition")
    define.add_argument(
        "--id", type=integer("--id"), required=True, help="the manufacturer's alarm id"
    )
    define.add_argument("--name", required=True, help="what people read, e.g. 'Gearbox hot'")
    define.add_argument(
        "--feature", required=True, help="the feature it watches (see 'features list')"
    )
    define.add_argument(
        "--operator",
        required=True,
        choices=(">", ">=", "<", "<=", "==", "!="),
        help="value <operator> threshold violates: one of > >= < <= == !=",
    )
    define.add_argument(
        "--threshold",
        type=finite_float("--threshold"),
        required=True,
        help="a sample violates when its value <operator> this",
    )
    define.add_argument(
        "--clear-threshold",
        type=finite_float("--clear-threshold"),
        help="hysteresis: active until the value passes this (default: none)",
    )
    define.add_argument(
        "--min-duration",
        type=duration,
        default=timedelta(0),
        metavar="SECONDS",
        help="drop shorter occurrences (default: 0)",
    )
    define.set_defaults(handler=cmd_alarms_define)
    definitions = alarms.add_parser(
        "definitions", help="the alarm definitions: id, name, feature, rule, minimum duration"
    )
    add_json_flag(definitions)
    definitions.set_defaults(handler=cmd_alarms_definitions)
    alarm_list = alarms.add_parser("list", help="alarm occurrences")
    alarm_list.add_argument("--object", help="only this object (exit 2 if unknown)")
    alarm_list.add_argument(
        "--alarm", type=integer("--alarm"), help="only this alarm id (exit 2 if unknown)"
    )
    add_json_flag(alarm_list)
    alarm_list.set_defaults(handler=cmd_alarms_list)
    plot = alarms.add_parser(
        "plot", help="draw an alarm's timeline: values, thresholds, occurrences, gaps (PNG)"
    )
    plot.add_argument("--object", required=True, metavar="NAME", help="the object to draw")
    plot.add_argument(
        "--alarm", type=integer("--alarm"), required=True, metavar="ID", help="the alarm id"
    )
    plot.add_argument("--start", metavar="T", help="ISO 8601 (default: the latest job's period)")
    plot.add_argument("--end", metavar="T", help="exclusive (default: the latest job's period)")
    plot.add_argument(
        "-o", "--output", required=True, metavar="FILE.png", help="where to write the picture"
    )
    plot.set_defaults(handler=cmd_alarms_plot)


def cmd_alarms_define(args: argparse.Namespace) -> None:
    alarm = open_perfdb(args).catalog.define_alarm(
        alarm_id=args.id,
        name=args.name,
        feature=args.feature,
        operator=args.operator,
        threshold=args.threshold,
        clear_threshold=args.clear_threshold,
        min_duration=args.min_duration,
    )
    print(
        f"alarm {alarm.id} {alarm.name!r}: {alarm.feature.name} {alarm.operator} {alarm.threshold}"
    )


def cmd_alarms_list(args: argparse.Namespace) -> None:
    from jobs_pipeline.calc.data_quality import format_duration

    perfdb = open_perfdb(args)
    # A filter that names nothing is a typo, not "0 occurrences".
    if args.object is not None:
        perfdb.catalog.object_ids([args.object])
    if args.alarm is not None:
        perfdb.catalog.alarms([args.alarm])
    occurrences = perfdb.occurrences.list(object_name=args.object, alarm_id=args.alarm)
    names = {alarm.id: alarm.name for alarm in perfdb.catalog.list_alarms()}
    if args.json:
        print_json(
            [
                {
                    "object": occurrence.object_name,
                    "alarm_id": occurrence.alarm_id,
                    "alarm_name": names.get(occurrence.alarm_id),
                    "start": occurrence.start.isoformat(),
                    "end": occurrence.end.isoformat(),
                    "peak_value": occurrence.peak_value,
                }
                for occurrence in occurrences
            ]
        )
        return
    print_table(
        ("object", "alarm", "name", "start", "end", "duration", "peak"),
        [
            (
                occurrence.object_name,
                occurrence.alarm_id,
                names.get(occurrence.alarm_id, ""),
                short_time(occurrence.start),
                short_time(occurrence.end),
                format_duration(occurrence.end - occurrence.start),
                "" if occurrence.peak_value is None else f"{occurrence.peak_value:.6g}",
            )
            for occurrence in occurrences
        ],
    )
    print(plural(len(occurrences), "occurrence"))


def cmd_alarms_definitions(args: argparse.Namespace) -> None:
    alarms = open_perfdb(args).catalog.list_alarms()
    if args.json:
        print_json(
            [
                {
                    "id": alarm.id,
                    "name": alarm.name,
                    "feature": alarm.feature.name,
                    "operator": alarm.operator,
                    "threshold": alarm.threshold,
                    "clear_threshold": alarm.clear_threshold,
                    "min_duration_seconds": alarm.min_duration.total_seconds(),
                }
                for alarm in alarms
            ]
        )
        return
    print_table(
        ("id", "name", "rule", "clear", "min duration"),
        [
            (
                alarm.id,
                alarm.name,
                f"{alarm.feature.name} {alarm.operator} {alarm.threshold:g}",
                "" if alarm.clear_threshold is None else f"{alarm.clear_threshold:g}",
                alarm.min_duration,
            )
            for alarm in alarms
        ],
    )
    print(plural(len(alarms), "alarm definition"))


def cmd_alarms_plot(args: argparse.Namespace) -> None:
    from jobs_pipeline.calc import parse_timestamp
    from jobs_pipeline.jobs.alarm_calc import parse_period
    from jobs_pipeline.report import alarm_timeline_png
    from jobs_pipeline.report.alarm_plot import stored_timeline

    perfdb = open_perfdb(args)
    if (args.start is None) != (args.end is None):
        raise UsageError("give both --start and --end, or neither (the latest job's period)")
    if args.start is not None:
        try:
            start, end = parse_timestamp(args.start), parse_timestamp(args.end)
        except ValueError as error:
            raise UsageError(f"--start/--end: {error}") from None
    else:
        object_id = perfdb.catalog.object_ids([args.object])[args.object]
        perfdb.catalog.alarms([args.alarm])
        job = perfdb.queue.latest_job_over(object_id, args.alarm)
        if job is None:
            raise UsageError(
                f"no job has calculated alarm {args.alarm} for {args.object!r}: "
                "give --start and --end"
            )
        period = parse_period(job.parameters)
        start, end = period.start, period.end
    timeline = stored_timeline(perfdb, args.object, args.alarm, start, end)
    png = alarm_timeline_png(timeline)
    try:
        with open(args.output, "wb") as file:
            file.write(png)
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
    print(
        f"wrote {args.output}: {args.object}, alarm {args.alarm}, {short_time(start)} to "
        f"{short_time(end)}, {len(timeline.values)} samples, "
        f"{len(timeline.occurrences)} occurrences"
    )
