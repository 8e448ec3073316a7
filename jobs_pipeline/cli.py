"""The `jobs-pipeline` command.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem, nothing written),
1 any other failure. `--json` prints machine-readable output on stdout and nothing else there.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from jobs_pipeline.perfdb.errors import InputError, PerfDBError
from jobs_pipeline.perfdb.states import JobState

if TYPE_CHECKING:
    from jobs_pipeline.perfdb.records import ImportSummary

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
        "heartbeat": _iso(job.heartbeat),
        "cancel_requested": _iso(job.cancel_requested),
        "cancel_requested_by": job.cancel_requested_by,
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


def _perfdb(args: argparse.Namespace, *, needs_schema: bool = True) -> Any:
    """The database of `--db`; unless the command builds the schema itself, one without it is
    refused with a pointer to `db upgrade` (and a SQLite file that does not exist is not
    created)."""
    from jobs_pipeline.perfdb import PerfDB
    from jobs_pipeline.perfdb.engine import default_url, missing_sqlite_file, redact

    url = args.db or default_url()
    no_schema = f"database {redact(url)} has no schema: run 'jobs-pipeline db upgrade'"
    if needs_schema and missing_sqlite_file(url):
        raise PerfDBError(no_schema)
    perfdb = PerfDB.connect(url)
    args.opened.append(perfdb)  # disposed by main(), which may run many times in one process
    if needs_schema and not perfdb.has_schema():
        raise PerfDBError(no_schema)
    return perfdb


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import upgrade_database
    from jobs_pipeline.perfdb.migrate import current_revision, head_revision

    perfdb = _perfdb(args, needs_schema=False)
    before = current_revision(perfdb.engine)
    upgrade_database(perfdb)
    head = head_revision()
    if before is None:
        print(f"performance database {perfdb.url}: created the schema (revision {head})")
    elif before != head:
        print(f"performance database {perfdb.url}: upgraded from revision {before} to {head}")
    else:
        print(f"performance database {perfdb.url}: already current (revision {head})")


def cmd_demo_seed(args: argparse.Namespace) -> None:
    from jobs_pipeline.calc.synthetic_fleet import generate_fleet
    from jobs_pipeline.jobs import upgrade_database
    from jobs_pipeline.perfdb.demo import store_fleet

    try:
        fleet = generate_fleet(objects=args.objects, days=args.days, seed=args.seed)
    except ValueError as error:
        raise UsageError(f"demo seed: {error}") from None
    perfdb = _perfdb(args, needs_schema=False)
    upgrade_database(perfdb)
    summary = store_fleet(perfdb, fleet)
    first, last = fleet.object_names[0], fleet.object_names[-1]
    print(
        f"seeded {summary.objects} objects ({first} .. {last}), {summary.features} features, "
        f"{summary.values} values from {_short_time(fleet.start)} to {_short_time(fleet.end)}, "
        f"{summary.alarms} alarm definitions ({', '.join(str(a.alarm_id) for a in fleet.alarms)})"
    )
    if summary.objects_kept:
        print(f"kept the values already stored for {', '.join(summary.objects_kept)}")
    if summary.alarms_kept:
        print(f"kept the alarm definitions {', '.join(map(str, summary.alarms_kept))} as they are")


def cmd_features_import(args: argparse.Namespace) -> None:
    from jobs_pipeline.perfdb.catalog import DEFAULT_SAMPLING_PERIOD
    from jobs_pipeline.perfdb.feature_files import CHUNK_ROWS

    perfdb = _perfdb(args)
    with _import_progress(args.file) as on_chunk:
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
            created += f", sampling period {_seconds_text(period)}"
        created += ")"
    print(f"imported {summary.rows} values from {args.file}: {_news(summary)}{created}")


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


def _news(summary: ImportSummary) -> str:
    changed = f", {summary.changed_values} changed" if summary.changed_values else ""
    return f"{summary.new_values} new{changed}"


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
    perfdb = _perfdb(args)
    # A filter that names nothing is a typo, not "0 occurrences".
    if args.object is not None:
        perfdb.catalog.object_ids([args.object])
    if args.alarm is not None:
        perfdb.catalog.alarms([args.alarm])
    occurrences = perfdb.occurrences.list(object_name=args.object, alarm_id=args.alarm)
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


def cmd_alarms_plot(args: argparse.Namespace) -> None:
    from jobs_pipeline.calc import parse_timestamp
    from jobs_pipeline.jobs.alarm_calc import parse_period
    from jobs_pipeline.report import alarm_timeline_png
    from jobs_pipeline.report.alarm_plot import stored_timeline

    perfdb = _perfdb(args)
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
        f"wrote {args.output}: {args.object}, alarm {args.alarm}, {_short_time(start)} to "
        f"{_short_time(end)}, {len(timeline.values)} samples, "
        f"{len(timeline.occurrences)} occurrences"
    )


def cmd_job_create(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import check_job_parameters, create_job

    perfdb = _perfdb(args)
    if args.reuse:
        check_job_parameters(perfdb, args.type, args.params)
        existing = [
            job
            for job in perfdb.queue.list_jobs(type_name=args.type)
            if job.description == args.description
        ]
        if existing:
            print(_reuse(perfdb, existing[-1], args))
            return
    job = create_job(
        perfdb,
        args.type,
        args.params,
        description=args.description,
        queue=args.queue,
        actor=ACTOR,
    )
    print(job.id)


def _reuse(perfdb: Any, job: Any, args: argparse.Namespace) -> int:
    """The job of this type and description that exists already, queued again if it ended
    (a script that is run twice leaves one job, not two)."""
    if job.parameters != args.params:
        if job.state != JobState.CREATED:
            raise UsageError(
                f"job {job.id} ({args.description!r}) exists with other parameters and is "
                f"{job.state.label}: delete it or use another description"
            )
        perfdb.queue.update_job(job.id, parameters=args.params, actor=ACTOR)
    if args.queue and job.state in (JobState.CREATED, JobState.FINISHED, JobState.FAILED):
        perfdb.queue.queue_job(job.id, actor=ACTOR)
    return int(job.id)


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
    perfdb = _perfdb(args)
    if args.type is not None:
        known = [spec.name for spec in perfdb.queue.job_types()]
        if args.type not in known:
            names = ", ".join(map(repr, known)) or "none"
            raise UsageError(f"unknown job type {args.type!r} (known: {names})")
    jobs = perfdb.queue.list_jobs(state=args.state, type_name=args.type)
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
    for line in _job_notes(job):
        print(f"  {line}")
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


def _job_notes(job: Any) -> list[str]:
    """What a person should know beyond the columns: a pending cancel, a silent run, a job that
    no run has picked up for long."""
    from jobs_pipeline.perfdb.heartbeat import heartbeat_seconds, heartbeat_silence_seconds
    from jobs_pipeline.perfdb.queue import utcnow

    notes = []
    now = utcnow()
    if job.cancel_requested is not None:
        notes.append(
            f"cancel requested by {job.cancel_requested_by or 'frontend'} at "
            f"{_short_time(job.cancel_requested)}: its run is being terminated"
        )
    if job.state == JobState.RUNNING and job.heartbeat is not None:
        quiet = (now - job.heartbeat).total_seconds()
        if quiet > 2 * heartbeat_seconds():
            notes.append(
                f"warning: no heartbeat from run {job.run_id} for {quiet:.0f} s "
                f"(presumed dead after {heartbeat_silence_seconds():.0f} s)"
            )
    if job.state == JobState.QUEUED:
        from jobs_pipeline.orchestration.reconciler_settings import queued_warning_seconds

        waited = (now - job.last_state_change).total_seconds()
        if waited > queued_warning_seconds():
            notes.append(
                f"warning: Queued for {waited / 60:.0f} min and no run has claimed it: "
                f"is the Dagster daemon (queue sensor) running?"
            )
    return notes


def cmd_job_delete(args: argparse.Namespace) -> None:
    _perfdb(args).queue.delete_job(args.id)
    print(f"job {args.id} deleted")


def cmd_job_run(args: argparse.Namespace) -> None:
    from jobs_pipeline.orchestration.launch import RunFailed, run_queued_job
    from jobs_pipeline.progress import JobProgress

    perfdb = _perfdb(args)
    progress: JobProgress | None = None

    def launched(run_id: str) -> None:
        nonlocal progress
        print(
            f"run {run_id} launched for job {args.id}; to cancel it: "
            f"jobs-pipeline job cancel {args.id}",
            file=sys.stderr,
        )
        progress = JobProgress(perfdb.queue, args.id, out=sys.stderr, tty=sys.stderr.isatty())
        progress.__enter__()

    def poll() -> None:
        if progress is not None:
            progress.poll()

    try:
        outcome = run_queued_job(
            perfdb, args.id, timeout_seconds=args.timeout, on_launch=launched, on_poll=poll
        )
        if progress is not None:
            progress.poll()
    except KeyboardInterrupt:
        if progress is not None:
            progress.__exit__(None, None, None)
            progress = None
        _interrupted_run(perfdb, args.id, cancel=args.cancel)
        raise
    finally:
        if progress is not None:
            progress.__exit__(None, None, None)
    job = outcome.job
    if job.run_id != outcome.run_id and job.state not in (JobState.FINISHED, JobState.FAILED):
        # Another run (the queue sensor's, launched at the same moment) claimed the job first;
        # this one stepped aside without writing anything. Follow the job where it runs.
        from jobs_pipeline.progress import follow

        print(
            f"job {args.id} was claimed by run {job.run_id} first (the queue sensor's?); "
            f"run {outcome.run_id} stepped aside. Following the job there:",
            file=sys.stderr,
        )
        job = follow(perfdb.queue, args.id, out=sys.stderr, tty=sys.stderr.isatty())
        comment = f" ({job.comment})" if job.comment else ""
        print(f"job {job.id} {job.state.label}{comment}: run {job.run_id}")
    else:
        print(outcome)
    if job.state != JobState.FINISHED:
        raise RunFailed(f"job {args.id} ended {job.state.label}")


def cmd_job_watch(args: argparse.Namespace) -> None:
    from jobs_pipeline.orchestration.launch import RunFailed
    from jobs_pipeline.progress import follow

    perfdb = _perfdb(args)
    try:
        job = follow(perfdb.queue, args.id, out=sys.stdout, tty=sys.stdout.isatty())
    except KeyboardInterrupt:
        _interrupted_run(perfdb, args.id, cancel=args.cancel)
        raise
    if job.state == JobState.FAILED:
        raise RunFailed(f"job {args.id} ended Failed ({job.comment})")


def _interrupted_run(perfdb: Any, job_id: int, *, cancel: bool = False) -> None:
    """Ctrl-C while waiting: with `--cancel`, cancel the job; on a terminal, ask; otherwise
    leave the run going and say so."""
    job = perfdb.queue.get_job(job_id)
    if job.state in (JobState.FINISHED, JobState.FAILED):
        print(f"job {job_id} is {job.state.label}", file=sys.stderr)
        return
    answer = "yes" if cancel else ""
    if not cancel and sys.stdin.isatty():
        try:
            answer = input(f"\ncancel job {job_id}? [y/N] ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            answer = ""
    if answer in ("y", "yes"):
        job = perfdb.queue.cancel_job(job_id, actor=ACTOR)
        print(f"job {job_id}: cancel requested ({job.state.label})", file=sys.stderr)
    else:
        print(
            f"stopped waiting; job {job_id} goes on ({job.state.label}). "
            f"Follow it with 'jobs-pipeline job show {job_id}', "
            f"cancel it with 'jobs-pipeline job cancel {job_id}'",
            file=sys.stderr,
        )


def cmd_job_types(args: argparse.Namespace) -> None:
    types = _perfdb(args).queue.job_types()
    if args.json:
        _print_json(
            [
                {
                    "name": spec.name,
                    "description": spec.description,
                    "parameters_schema": spec.parameters_schema,
                }
                for spec in types
            ]
        )
        return
    for spec in types:
        print(f"{spec.name}: {spec.description}")
        properties = spec.parameters_schema.get("properties", {})
        required = set(spec.parameters_schema.get("required", []))
        for name, schema in properties.items():
            need = "required" if name in required else "optional"
            print(
                f"  {name} ({schema.get('type', 'any')}, {need}): {schema.get('description', '')}"
            )


def cmd_job_cancel(args: argparse.Namespace) -> None:
    job = _perfdb(args).queue.cancel_job(args.id, actor=args.actor or ACTOR)
    if job.state == JobState.RUNNING:
        print(
            f"job {job.id}: cancel requested; its run is terminated within seconds "
            f"and the steps not finished fail with 'canceled'"
        )
    else:
        print(f"job {job.id} is {job.state.label} ({job.comment})")


# --- parser ----------------------------------------------------------------------------------


def _job_type_names(argv: Sequence[str]) -> str:
    """The registered job types, for `job create --help` only: listing them imports every job
    type (and pandas), which no other command should pay for."""
    if not ({"-h", "--help"} & set(argv) and "create" in argv):
        return "see 'jobs-pipeline job types'"
    from jobs_pipeline.jobs.registry import job_type_specs

    return "one of " + ", ".join(repr(spec.name) for spec in job_type_specs())


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
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
    seed.add_argument(
        "--objects", type=_positive_int("--objects"), default=5, help="turbines (default: 5)"
    )
    seed.add_argument(
        "--days", type=_positive_int("--days"), default=14, help="days of data (default: 14)"
    )
    seed.add_argument("--seed", type=_integer("--seed"), default=0, help="randomness (default: 0)")
    seed.set_defaults(handler=cmd_demo_seed)

    features = groups.add_parser("features", help="measured features").add_subparsers(
        dest="command", required=True
    )
    feature_import = features.add_parser(
        "import", help="import object,feature,timestamp,value from CSV or Parquet (streamed)"
    )
    feature_import.add_argument("file", metavar="FILE.csv|FILE.parquet")
    feature_import.add_argument(
        "--sampling-period",
        type=_sampling_period("--sampling-period"),
        metavar="SECONDS",
        help="sampling period of the features this import creates (default 600)",
    )
    feature_import.add_argument(
        "--chunk-rows",
        type=_positive_int("--chunk-rows"),
        metavar="N",
        help="values read and written at a time: memory against speed (default 400000)",
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
    define.add_argument(
        "--operator",
        required=True,
        choices=(">", ">=", "<", "<=", "==", "!="),
        help="value <operator> threshold violates: one of > >= < <= == !=",
    )
    define.add_argument("--threshold", type=_finite_float("--threshold"), required=True)
    define.add_argument(
        "--clear-threshold",
        type=_finite_float("--clear-threshold"),
        help="hysteresis: active until the value passes this (default: none)",
    )
    define.add_argument(
        "--min-duration",
        type=_seconds,
        default=timedelta(0),
        metavar="SECONDS",
        help="drop shorter occurrences (default: 0)",
    )
    define.set_defaults(handler=cmd_alarms_define)
    alarm_list = alarms.add_parser("list", help="alarm occurrences")
    alarm_list.add_argument("--object", help="only this object (exit 2 if unknown)")
    alarm_list.add_argument(
        "--alarm", type=_integer("--alarm"), help="only this alarm id (exit 2 if unknown)"
    )
    alarm_list.add_argument("--json", action="store_true")
    alarm_list.set_defaults(handler=cmd_alarms_list)
    plot = alarms.add_parser(
        "plot", help="draw an alarm's timeline: values, thresholds, occurrences, gaps (PNG)"
    )
    plot.add_argument("--object", required=True, metavar="NAME")
    plot.add_argument("--alarm", type=_integer("--alarm"), required=True, metavar="ID")
    plot.add_argument("--start", metavar="T", help="ISO 8601 (default: the latest job's period)")
    plot.add_argument("--end", metavar="T", help="exclusive (default: the latest job's period)")
    plot.add_argument("-o", "--output", required=True, metavar="FILE.png")
    plot.set_defaults(handler=cmd_alarms_plot)

    job = groups.add_parser("job", help="the job queue").add_subparsers(
        dest="command", required=True
    )
    job_id = _positive_int("job id")
    create = job.add_parser("create", help="create a job; prints its id")
    create.add_argument(
        "--type", required=True, metavar="NAME", help=f"job type: {_job_type_names(argv)}"
    )
    create.add_argument(
        "--params",
        type=_json_object,
        required=True,
        metavar="JSON",
        help="parameters as a JSON object (schema: 'jobs-pipeline job types --json')",
    )
    create.add_argument("--description", default="", help='free text; "test" marks a test job')
    create.add_argument("--queue", action="store_true", help="queue it right away")
    create.add_argument(
        "--reuse",
        action="store_true",
        help="if a job of this type and description exists, use it (queued again if it "
        "ended) instead of creating another",
    )
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
    job_list.add_argument(
        "--state",
        type=_state,
        help="one of " + ", ".join(state.label for state in JobState) + " (any case)",
    )
    job_list.add_argument("--type", metavar="NAME", help="only jobs of this type")
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
    run.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="stop waiting after this long; the run goes on (default: 3600)",
    )
    run.add_argument(
        "--cancel", action="store_true", help="Ctrl-C cancels the job instead of asking"
    )
    run.set_defaults(handler=cmd_job_run)
    watch = job.add_parser("watch", help="follow a job's steps live until it ends")
    watch.add_argument("id", type=job_id, metavar="ID")
    watch.add_argument(
        "--cancel", action="store_true", help="Ctrl-C cancels the job instead of asking"
    )
    watch.set_defaults(handler=cmd_job_watch)
    cancel = job.add_parser(
        "cancel", help="Created/Queued: Failed now; Running: its run is terminated"
    )
    cancel.add_argument("id", type=job_id, metavar="ID")
    cancel.add_argument("--as", dest="actor", metavar="WHO", help="who cancels (default: cli)")
    cancel.set_defaults(handler=cmd_job_cancel)
    types = job.add_parser("types", help="job types and their parameter schemas")
    types.add_argument("--json", action="store_true")
    types.set_defaults(handler=cmd_job_types)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        arguments = list(sys.argv[1:] if argv is None else argv)
        args = build_parser(arguments).parse_args(arguments)
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
    except KeyboardInterrupt:
        return 130
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
