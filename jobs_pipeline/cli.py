"""The `jobs-pipeline` command.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem, nothing written),
1 any other failure. `--json` prints machine-readable output on stdout and nothing else there.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from jobs_pipeline.perfdb.errors import InputError, PerfDBError
from jobs_pipeline.perfdb.states import JobState

ACTOR = "cli"


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line that names the problem instead of argparse's usage block.
        raise UsageError(f"{self.prog}: {message}")


# --- argument types --------------------------------------------------------------------------


def _positive_int(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a positive integer, got {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{what} must be a positive integer, got {text!r}")
        return value

    return parse


def _integer(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None

    return parse


def _finite_float(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number, got {text!r}")
        return value

    return parse


def _seconds(text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"minimum duration must be a number of seconds, got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"minimum duration must be >= 0 seconds, got {text!r}")
    return timedelta(seconds=value)


def _sampling_period(what: str) -> Callable[[str], timedelta]:
    def parse(text: str) -> timedelta:
        try:
            seconds = int(text)
        except ValueError:
            seconds = 0
        if seconds < 1:
            raise argparse.ArgumentTypeError(
                f"{what} must be a positive whole number of seconds, got {text!r}"
            )
        return timedelta(seconds=seconds)

    return parse


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--params is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"--params must be a JSON object, got {type(value).__name__}"
        )
    return value


def _state(text: str) -> Any:
    from jobs_pipeline.perfdb.states import JobState

    try:
        return JobState.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


# --- output ----------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _job_json(job: Any, steps: Sequence[Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": job.id,
        "type": job.type_name,
        "state": job.state.label,
        "parameters": job.parameters,
        "description": job.description,
        "comment": job.comment,
        "created": _iso(job.created),
        "started": _iso(job.started),
        "finished": _iso(job.finished),
        "last_state_change": _iso(job.last_state_change),
        "queue_count": job.queue_count,
        "run_id": job.run_id,
    }
    if steps is not None:
        data["steps"] = [
            {
                "id": step.id,
                "object": step.object_name,
                "alarm_id": step.alarm_id,
                "state": step.state.label,
                "comment": step.comment,
                "attempts": step.attempts,
                "run_id": step.run_id,
            }
            for step in steps
        ]
    return data


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in rows]
    widths = [
        max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)
    ]
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _short_time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


# --- commands --------------------------------------------------------------------------------


def _perfdb(args: argparse.Namespace) -> Any:
    from jobs_pipeline.perfdb import PerfDB

    perfdb = PerfDB.connect(args.db)
    args.opened.append(perfdb)  # disposed by main(), which may run many times in one process
    return perfdb


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import upgrade_database

    perfdb = _perfdb(args)
    upgrade_database(perfdb)
    print(f"performance database {perfdb.url} is up to date")


def cmd_demo_seed(args: argparse.Namespace) -> None:
    from jobs_pipeline.calc.synthetic_fleet import generate_fleet
    from jobs_pipeline.jobs import upgrade_database
    from jobs_pipeline.perfdb.demo import store_fleet

    try:
        fleet = generate_fleet(objects=args.objects, days=args.days, seed=args.seed)
    except ValueError as error:
        raise UsageError(f"demo seed: {error}") from None
    perfdb = _perfdb(args)
    upgrade_database(perfdb)
    summary = store_fleet(perfdb, fleet)
    first, last = fleet.object_names[0], fleet.object_names[-1]
    print(
        f"seeded {summary.objects} objects ({first} .. {last}), {summary.features} features, "
        f"{summary.values} values from {_short_time(fleet.start)} to {_short_time(fleet.end)}, "
        f"{summary.alarms} alarm definitions ({', '.join(str(a.alarm_id) for a in fleet.alarms)})"
    )


def cmd_features_import(args: argparse.Namespace) -> None:
    from jobs_pipeline.perfdb.catalog import DEFAULT_SAMPLING_PERIOD

    summary = _perfdb(args).values.import_csv(args.file, sampling_period=args.sampling_period)
    created = ""
    if summary.objects_created or summary.features_created:
        created = (
            f" (new objects: {len(summary.objects_created)}, "
            f"new features: {len(summary.features_created)}"
        )
        if summary.features_created:
            period = args.sampling_period or DEFAULT_SAMPLING_PERIOD
            created += f", sampling period {_seconds_text(period)}"
        created += ")"
    print(f"imported {summary.rows} values from {args.file}{created}")


def cmd_features_list(args: argparse.Namespace) -> None:
    overview = _perfdb(args).catalog.feature_overview()
    if args.json:
        _print_json(
            [
                {
                    "name": item.feature.name,
                    "unit": item.feature.unit,
                    "sampling_period_seconds": int(item.feature.sampling_period.total_seconds()),
                    "objects": item.objects,
                    "samples": item.samples,
                    "first": _iso(item.first),
                    "last": _iso(item.last),
                }
                for item in overview
            ]
        )
        return
    _print_table(
        ("feature", "unit", "sampling period", "objects", "samples", "first", "last"),
        [
            (
                item.feature.name,
                item.feature.unit,
                _seconds_text(item.feature.sampling_period),
                item.objects,
                item.samples,
                _short_time(item.first),
                _short_time(item.last),
            )
            for item in overview
        ],
    )


def cmd_features_set_period(args: argparse.Namespace) -> None:
    before, after = _perfdb(args).catalog.set_sampling_period(args.name, args.seconds)
    print(
        f"feature {after.name!r}: sampling period {_seconds_text(before.sampling_period)} -> "
        f"{_seconds_text(after.sampling_period)}"
    )


def _seconds_text(period: timedelta) -> str:
    return f"{period.total_seconds():g} s"


def cmd_alarms_define(args: argparse.Namespace) -> None:
    alarm = _perfdb(args).catalog.define_alarm(
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
    occurrences = _perfdb(args).occurrences.list(object_name=args.object, alarm_id=args.alarm)
    if args.json:
        _print_json(
            [
                {
                    "object": occurrence.object_name,
                    "alarm_id": occurrence.alarm_id,
                    "start": occurrence.start.isoformat(),
                    "end": occurrence.end.isoformat(),
                    "peak_value": occurrence.peak_value,
                }
                for occurrence in occurrences
            ]
        )
        return
    _print_table(
        ("object", "alarm", "start", "end", "duration", "peak"),
        [
            (
                occurrence.object_name,
                occurrence.alarm_id,
                _short_time(occurrence.start),
                _short_time(occurrence.end),
                occurrence.end - occurrence.start,
                "" if occurrence.peak_value is None else f"{occurrence.peak_value:.6g}",
            )
            for occurrence in occurrences
        ],
    )
    print(f"{len(occurrences)} occurrences")


def cmd_job_create(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import create_job

    job = create_job(
        _perfdb(args),
        args.type,
        args.params,
        description=args.description,
        queue=args.queue,
        actor=ACTOR,
    )
    print(job.id)


def cmd_job_update(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import check_job_parameters

    perfdb = _perfdb(args)
    if args.params is not None:
        check_job_parameters(perfdb, perfdb.queue.get_job(args.id).type_name, args.params)
    job = perfdb.queue.update_job(
        args.id, parameters=args.params, description=args.description, actor=ACTOR
    )
    print(f"job {job.id} updated")


def cmd_job_queue(args: argparse.Namespace) -> None:
    job = _perfdb(args).queue.queue_job(args.id, actor=ACTOR)
    print(f"job {job.id} is Queued (queued {job.queue_count} times)")


def cmd_job_list(args: argparse.Namespace) -> None:
    jobs = _perfdb(args).queue.list_jobs(state=args.state, type_name=args.type)
    if args.json:
        _print_json([_job_json(job) for job in jobs])
        return
    _print_table(
        ("id", "type", "state", "created", "finished", "description", "comment"),
        [
            (
                job.id,
                job.type_name,
                job.state.label,
                _short_time(job.created),
                _short_time(job.finished),
                job.description,
                job.comment,
            )
            for job in jobs
        ],
    )


def cmd_job_show(args: argparse.Namespace) -> None:
    perfdb = _perfdb(args)
    job = perfdb.queue.get_job(args.id)
    steps = perfdb.queue.get_steps(args.id)
    if args.json:
        _print_json(_job_json(job, steps))
        return
    print(f"job {job.id}: {job.type_name} [{job.state.label}]")
    print(f"  description: {job.description}")
    print(f"  parameters:  {json.dumps(job.parameters, ensure_ascii=False)}")
    print(f"  comment:     {job.comment or ''}")
    print(
        f"  created {_short_time(job.created)}  started {_short_time(job.started)}  "
        f"finished {_short_time(job.finished)}  queued {job.queue_count}x  run {job.run_id or ''}"
    )
    _print_table(
        ("step", "object", "alarm", "state", "attempts", "comment"),
        [
            (
                step.id,
                step.object_name,
                step.alarm_id,
                step.state.label,
                step.attempts,
                step.comment,
            )
            for step in steps
        ],
    )


def cmd_job_delete(args: argparse.Namespace) -> None:
    _perfdb(args).queue.delete_job(args.id)
    print(f"job {args.id} deleted")


def cmd_job_run(args: argparse.Namespace) -> None:
    from jobs_pipeline.orchestration.launch import RunFailed, run_queued_job

    perfdb = _perfdb(args)
    outcome = run_queued_job(perfdb, args.id, timeout_seconds=args.timeout)
    print(outcome)
    if outcome.job.state != JobState.FINISHED:
        raise RunFailed(f"job {args.id} ended {outcome.job.state.label}")


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jobs-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", metavar="URL", help="performance database URL (default: $PERFDB_URL or SQLite)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    groups = parser.add_subparsers(dest="group", required=True, parser_class=_Parser)

    db = groups.add_parser("db", help="the database schema").add_subparsers(
        dest="command", required=True
    )
    db.add_parser("upgrade", help="apply migrations, register job types").set_defaults(
        handler=cmd_db_upgrade
    )

    demo = groups.add_parser("demo", help="synthetic demo data").add_subparsers(
        dest="command", required=True
    )
    seed = demo.add_parser("seed", help="store a deterministic synthetic fleet")
    seed.add_argument("--objects", type=_positive_int("--objects"), default=5)
    seed.add_argument("--days", type=_positive_int("--days"), default=14)
    seed.add_argument("--seed", type=_integer("--seed"), default=0)
    seed.set_defaults(handler=cmd_demo_seed)

    features = groups.add_parser("features", help="measured features").add_subparsers(
        dest="command", required=True
    )
    feature_import = features.add_parser("import", help="import object,feature,timestamp,value")
    feature_import.add_argument("file", metavar="FILE.csv")
    feature_import.add_argument(
        "--sampling-period",
        type=_sampling_period("--sampling-period"),
        metavar="SECONDS",
        help="sampling period of the features this import creates (default 600)",
    )
    feature_import.set_defaults(handler=cmd_features_import)
    feature_list = features.add_parser(
        "list", help="features: unit, sampling period, objects, samples, first and last"
    )
    feature_list.add_argument("--json", action="store_true")
    feature_list.set_defaults(handler=cmd_features_list)
    set_period = features.add_parser("set-period", help="change a feature's sampling period")
    set_period.add_argument("name", metavar="NAME")
    set_period.add_argument("seconds", type=_sampling_period("SECONDS"), metavar="SECONDS")
    set_period.set_defaults(handler=cmd_features_set_period)

    alarms = groups.add_parser("alarms", help="alarm definitions and occurrences").add_subparsers(
        dest="command", required=True
    )
    define = alarms.add_parser("define", help="create or replace an alarm definition")
    define.add_argument("--id", type=_integer("--id"), required=True)
    define.add_argument("--name", required=True)
    define.add_argument("--feature", required=True)
    define.add_argument("--operator", required=True, choices=(">", ">=", "<", "<=", "==", "!="))
    define.add_argument("--threshold", type=_finite_float("--threshold"), required=True)
    define.add_argument("--clear-threshold", type=_finite_float("--clear-threshold"))
    define.add_argument("--min-duration", type=_seconds, default=timedelta(0), metavar="SECONDS")
    define.set_defaults(handler=cmd_alarms_define)
    alarm_list = alarms.add_parser("list", help="alarm occurrences")
    alarm_list.add_argument("--object")
    alarm_list.add_argument("--alarm", type=_integer("--alarm"))
    alarm_list.add_argument("--json", action="store_true")
    alarm_list.set_defaults(handler=cmd_alarms_list)

    job = groups.add_parser("job", help="the job queue").add_subparsers(
        dest="command", required=True
    )
    job_id = _positive_int("job id")
    create = job.add_parser("create", help="create a job; prints its id")
    create.add_argument("--type", required=True)
    create.add_argument("--params", type=_json_object, required=True, metavar="JSON")
    create.add_argument("--description", default="")
    create.add_argument("--queue", action="store_true", help="queue it right away")
    create.set_defaults(handler=cmd_job_create)
    update = job.add_parser("update", help="change a Created job's parameters or description")
    update.add_argument("id", type=job_id, metavar="ID")
    update.add_argument("--params", type=_json_object, metavar="JSON")
    update.add_argument("--description")
    update.set_defaults(handler=cmd_job_update)
    queue = job.add_parser("queue", help="Created, Failed or Finished -> Queued")
    queue.add_argument("id", type=job_id, metavar="ID")
    queue.set_defaults(handler=cmd_job_queue)
    job_list = job.add_parser("list", help="jobs in id order")
    job_list.add_argument("--state", type=_state)
    job_list.add_argument("--type")
    job_list.add_argument("--json", action="store_true")
    job_list.set_defaults(handler=cmd_job_list)
    show = job.add_parser("show", help="a job and its steps")
    show.add_argument("id", type=job_id, metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_job_show)
    delete = job.add_parser("delete", help="delete a job that is not Running")
    delete.add_argument("id", type=job_id, metavar="ID")
    delete.set_defaults(handler=cmd_job_delete)
    run = job.add_parser("run", help="launch this queued job's Dagster run now and wait")
    run.add_argument("id", type=job_id, metavar="ID")
    run.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS")
    run.set_defaults(handler=cmd_job_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(str(error), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args.opened = []
    try:
        args.handler(args)
    except (UsageError, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except PerfDBError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except Exception as error:
        logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        for perfdb in args.opened:
            perfdb.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
