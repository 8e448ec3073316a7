"""`jobs-pipeline schedule`: periodic jobs, one per period of a schedule, and backfills."""

from __future__ import annotations

import argparse
from typing import Any

from jobs_pipeline.cli.arguments import json_object, open_perfdb
from jobs_pipeline.cli.output import add_json_flag, iso, print_json, print_table, short_time

ACTOR = "user:cli"


def _duration(text: str) -> Any:
    from jobs_pipeline.settings import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _catch_up(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"--catch-up must be a whole number >= 0, got {text!r}")
    return value


def add_parser(groups: argparse._SubParsersAction) -> None:
    schedule = groups.add_parser(
        "schedule", help="periodic jobs: one job per period of a schedule"
    ).add_subparsers(dest="command", required=True)
    create = schedule.add_parser("create", help="create an enabled schedule")
    create.add_argument("--name", required=True, help="unique name; runs are tagged with it")
    create.add_argument("--type", required=True, metavar="NAME", help="job type")
    create.add_argument(
        "--params",
        type=json_object,
        required=True,
        metavar="JSON",
        help="job parameters without start/end, which each period adds (in UTC)",
    )
    create.add_argument(
        "--every",
        required=True,
        metavar="UNIT",
        help="Nmin (N divides 60), hour, day, week (from Monday) or month",
    )
    create.add_argument(
        "--timezone", default="UTC", metavar="TZ", help="IANA zone of the calendar (default UTC)"
    )
    create.add_argument(
        "--delay",
        type=_duration,
        metavar="DURATION",
        help="create each period's job this long after its end (30s, 15min, 2h; default 0)",
    )
    create.add_argument(
        "--start",
        metavar="T",
        help="the first period is the one holding T (local in --timezone unless it has an "
        "offset; default: now)",
    )
    create.add_argument(
        "--catch-up",
        type=_catch_up,
        metavar="N",
        help="missed periods created at once after a downtime, besides the newest (default 3)",
    )
    create.add_argument("--description", default="", help="description of the created jobs")
    add_json_flag(create)
    create.set_defaults(handler=cmd_schedule_create)
    listing = schedule.add_parser("list", help="every schedule")
    add_json_flag(listing)
    listing.set_defaults(handler=cmd_schedule_list)
    for name, handler, text in (
        ("show", cmd_schedule_show, "a schedule and the periods it created"),
        ("pause", cmd_schedule_pause, "stop creating jobs (resume catches up)"),
        ("resume", cmd_schedule_resume, "create jobs again"),
        ("delete", cmd_schedule_delete, "delete a schedule (its jobs stay)"),
    ):
        command = schedule.add_parser(name, help=text)
        command.add_argument("name", metavar="NAME", help="the schedule's name")
        if name == "pause":
            command.add_argument("--comment", help="why (shown by list and show)")
        add_json_flag(command)
        command.set_defaults(handler=handler)
    backfill = schedule.add_parser(
        "backfill", help="create the jobs of the periods starting in [--from, --to), once"
    )
    backfill.add_argument("name", metavar="NAME", help="the schedule's name")
    backfill.add_argument(
        "--from", dest="low", required=True, metavar="T", help="local time unless with offset"
    )
    backfill.add_argument(
        "--to", dest="high", required=True, metavar="T", help="local time unless with offset"
    )
    add_json_flag(backfill)
    backfill.set_defaults(handler=cmd_schedule_backfill)


def _schedule_json(schedule: Any) -> dict[str, Any]:
    from jobs_pipeline.calc.periods import format_duration

    return {
        "name": schedule.name,
        "type": schedule.type_name,
        "parameters": schedule.parameters,
        "every": schedule.every,
        "timezone": schedule.timezone,
        "delay": format_duration(schedule.delay),
        "catch_up": schedule.catch_up,
        "enabled": schedule.enabled,
        "description": schedule.description,
        "comment": schedule.comment,
        "first_start": iso(schedule.first_start),
        "next_start": iso(schedule.next_start),
        "next_due": iso(schedule.next_due),
    }


def _period_json(period: Any) -> dict[str, Any]:
    return {"start": iso(period.start), "end": iso(period.end), "job_id": period.job_id}


def _print_schedules(schedules: list[Any]) -> None:
    from jobs_pipeline.calc.periods import format_duration

    print_table(
        (
            "name",
            "type",
            "every",
            "timezone",
            "delay",
            "catch-up",
            "enabled",
            "next due (UTC)",
            "comment",
        ),
        [
            (
                s.name,
                s.type_name,
                s.every,
                s.timezone,
                format_duration(s.delay),
                s.catch_up,
                "yes" if s.enabled else "no",
                short_time(s.next_due),
                s.comment,
            )
            for s in schedules
        ],
    )


def cmd_schedule_create(args: argparse.Namespace) -> None:
    from datetime import timedelta

    from jobs_pipeline.perfdb.schedules import DEFAULT_CATCH_UP

    schedule = open_perfdb(args).schedules.create(
        args.name,
        args.type,
        args.params,
        args.every,
        timezone=args.timezone,
        delay=args.delay or timedelta(0),
        start=args.start,
        catch_up=DEFAULT_CATCH_UP if args.catch_up is None else args.catch_up,
        description=args.description,
    )
    if args.json:
        print_json(_schedule_json(schedule))
        return
    print(
        f"schedule {schedule.name}: first period from {iso(schedule.first_start)}, "
        f"its job due at {iso(schedule.next_due)}"
    )


def cmd_schedule_list(args: argparse.Namespace) -> None:
    schedules = open_perfdb(args).schedules.all()
    if args.json:
        print_json([_schedule_json(schedule) for schedule in schedules])
        return
    _print_schedules(schedules)


def cmd_schedule_show(args: argparse.Namespace) -> None:
    perfdb = open_perfdb(args)
    schedule = perfdb.schedules.get(args.name)
    periods = perfdb.schedules.periods(args.name)
    if args.json:
        print_json({**_schedule_json(schedule), "periods": [_period_json(p) for p in periods]})
        return
    _print_schedules([schedule])
    print(f"parameters: {schedule.parameters}")
    print(f"{len(periods)} periods created")
    print_table(
        ("start (UTC)", "end (UTC)", "job"),
        [(short_time(p.start), short_time(p.end), p.job_id or "deleted") for p in periods[-20:]],
    )


def _set_enabled(args: argparse.Namespace, enabled: bool, comment: str | None) -> None:
    schedule = open_perfdb(args).schedules.set_enabled(args.name, enabled, comment)
    if args.json:
        print_json(_schedule_json(schedule))
        return
    print(f"schedule {schedule.name} {'resumed' if enabled else 'paused'}")


def cmd_schedule_pause(args: argparse.Namespace) -> None:
    _set_enabled(args, False, args.comment or f"paused by {ACTOR}")


def cmd_schedule_resume(args: argparse.Namespace) -> None:
    _set_enabled(args, True, None)


def cmd_schedule_delete(args: argparse.Namespace) -> None:
    open_perfdb(args).schedules.delete(args.name)
    if args.json:
        print_json({"name": args.name, "deleted": True})
        return
    print(f"schedule {args.name} deleted (its jobs stay)")


def cmd_schedule_backfill(args: argparse.Namespace) -> None:
    outcome = open_perfdb(args).schedules.backfill(args.name, args.low, args.high, actor=ACTOR)
    if args.json:
        print_json(
            {
                "created": [_period_json(p) for p in outcome.created],
                "existing": outcome.existing,
                "not_ended": outcome.not_ended,
            }
        )
        return
    print(
        f"{len(outcome.created)} jobs created, {outcome.existing} periods created before, "
        f"{outcome.not_ended} not ended yet (left to the scheduler)"
    )
