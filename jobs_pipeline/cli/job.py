"""`jobs-pipeline job`: the job queue, and running or following a job's Dagster run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jobs_pipeline.cli.arguments import job_state, json_object, open_perfdb, positive_int
from jobs_pipeline.cli.output import (
    Exit,
    UsageError,
    add_json_flag,
    iso,
    plural,
    print_json,
    print_table,
    short_time,
)
from jobs_pipeline.perfdb.states import JobState

ACTOR = "cli"


def _job_type_names(argv: Sequence[str]) -> str:
    """The registered job types, for `job create --help` only: listing them imports every job
    type (and pandas), which no other command should pay for."""
    if not ({"-h", "--help"} & set(argv) and "create" in argv):
        return "see 'jobs-pipeline job types'"
    from jobs_pipeline.jobs.registry import job_type_specs

    return "one of " + ", ".join(repr(spec.name) for spec in job_type_specs())


def add_parser(groups: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    job = groups.add_parser("job", help="the job queue").add_subparsers(
        dest="command", required=True
    )
    job_id = positive_int("job id")
    create = job.add_parser("create", help="create a job; prints its id")
    create.add_argument(
        "--type", required=True, metavar="NAME", help=f"job type: {_job_type_names(argv)}"
    )
    create.add_argument(
        "--params",
        type=json_object,
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
    update.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    update.add_argument(
        "--params", type=json_object, metavar="JSON", help="new parameters as a JSON object"
    )
    update.add_argument("--description", help="new free text")
    update.set_defaults(handler=cmd_job_update)
    queue = job.add_parser("queue", help="Created, Failed or Finished -> Queued")
    queue.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    queue.set_defaults(handler=cmd_job_queue)
    job_list = job.add_parser("list", help="jobs in id order")
    job_list.add_argument(
        "--state",
        type=job_state,
        help="one of " + ", ".join(state.label for state in JobState) + " (any case)",
    )
    job_list.add_argument("--type", metavar="NAME", help="only jobs of this type")
    job_list.add_argument("--schedule", metavar="NAME", help="only jobs this schedule created")
    job_list.add_argument(
        "--after", type=positive_int("--after"), default=0, metavar="ID", help="only ids above ID"
    )
    page = job_list.add_mutually_exclusive_group()
    page.add_argument(
        "--limit", type=positive_int("--limit"), metavar="N", help="at most N jobs, oldest first"
    )
    page.add_argument("--last", type=positive_int("--last"), metavar="N", help="the N newest jobs")
    add_json_flag(job_list)
    job_list.set_defaults(handler=cmd_job_list)
    show = job.add_parser("show", help="a job and its steps")
    show.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    add_json_flag(show)
    show.set_defaults(handler=cmd_job_show)
    delete = job.add_parser("delete", help="delete a job that is not Running")
    delete.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    delete.set_defaults(handler=cmd_job_delete)
    _add_run_parsers(job, job_id)


def _add_run_parsers(job: argparse._SubParsersAction, job_id: Callable[[str], int]) -> None:
    """The commands that act on a job's run, and the job types."""
    run = job.add_parser("run", help="launch this queued job's Dagster run now and wait")
    run.add_argument("id", type=job_id, metavar="ID", help="the job's id")
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
    watch.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    watch.add_argument(
        "--cancel", action="store_true", help="Ctrl-C cancels the job instead of asking"
    )
    watch.set_defaults(handler=cmd_job_watch)
    cancel = job.add_parser(
        "cancel", help="Created/Queued: Failed now; Running: its run is terminated"
    )
    cancel.add_argument("id", type=job_id, metavar="ID", help="the job's id")
    cancel.add_argument("--as", dest="actor", metavar="WHO", help="who cancels (default: cli)")
    cancel.set_defaults(handler=cmd_job_cancel)
    types = job.add_parser("types", help="job types and their parameter schemas")
    add_json_flag(types)
    types.set_defaults(handler=cmd_job_types)


def _job_json(
    job: Any, steps: Sequence[Any] | None = None, period: Any | None = None
) -> dict[str, Any]:
    """`period`: the schedule period that created the job, if a schedule did."""
    data: dict[str, Any] = {
        "id": job.id,
        "type": job.type_name,
        "state": job.state.label,
        "parameters": job.parameters,
        "description": job.description,
        "comment": job.comment,
        "created": iso(job.created),
        "started": iso(job.started),
        "finished": iso(job.finished),
        "last_state_change": iso(job.last_state_change),
        "queue_count": job.queue_count,
        "run_id": job.run_id,
        "heartbeat": iso(job.heartbeat),
        "cancel_requested": iso(job.cancel_requested),
        "cancel_requested_by": job.cancel_requested_by,
        "schedule": period.schedule if period is not None else None,
        "period": {"start": iso(period.start), "end": iso(period.end)} if period else None,
    }
    if steps is not None:
        data["steps"] = [
            {
                "id": step.id,
                "object": step.object_name,
                "alarm_id": step.alarm_id,
                "feature": step.feature_name,
                "state": step.state.label,
                "comment": step.comment,
                "attempts": step.attempts,
                "run_id": step.run_id,
                "started": iso(step.started),
                "finished": iso(step.finished),
                "depends_on": list(step.depends_on),
                "details": step.details,
            }
            for step in steps
        ]
    return data


def cmd_job_create(args: argparse.Namespace) -> None:
    from jobs_pipeline.jobs import check_job_parameters, create_job

    perfdb = open_perfdb(args)
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

    perfdb = open_perfdb(args)
    if args.params is not None:
        check_job_parameters(perfdb, perfdb.queue.get_job(args.id).type_name, args.params)
    job = perfdb.queue.update_job(
        args.id, parameters=args.params, description=args.description, actor=ACTOR
    )
    print(f"job {job.id} updated")


def cmd_job_queue(args: argparse.Namespace) -> None:
    job = open_perfdb(args).queue.queue_job(args.id, actor=ACTOR)
    print(f"job {job.id} is Queued (queued {plural(job.queue_count, 'time')})")


def cmd_job_list(args: argparse.Namespace) -> None:
    perfdb = open_perfdb(args)
    if args.type is not None:
        known = [spec.name for spec in perfdb.queue.job_types()]
        if args.type not in known:
            names = ", ".join(map(repr, known)) or "none"
            raise UsageError(f"unknown job type {args.type!r} (known: {names})")
    page = {"after_id": args.after, "limit": args.limit, "last": args.last}
    if args.schedule is not None:
        # A schedule creates jobs of its one type: --type keeps them all or none.
        jobs = perfdb.schedules.list_jobs(args.schedule, state=args.state, **page)
        jobs = [job for job in jobs if args.type in (None, job.type_name)]
    else:
        jobs = perfdb.queue.list_jobs(state=args.state, type_name=args.type, **page)
    if args.json:
        periods = perfdb.schedules.periods_of_jobs([job.id for job in jobs])
        print_json([_job_json(job, period=periods.get(job.id)) for job in jobs])
        return
    print_table(
        ("id", "type", "state", "created", "finished", "description", "comment"),
        [
            (
                job.id,
                job.type_name,
                job.state.label,
                short_time(job.created),
                short_time(job.finished),
                job.description,
                job.comment,
            )
            for job in jobs
        ],
    )


def cmd_job_show(args: argparse.Namespace) -> None:
    perfdb = open_perfdb(args)
    job = perfdb.queue.get_job(args.id)
    steps = perfdb.queue.get_steps(args.id)
    if args.json:
        period = perfdb.schedules.periods_of_jobs([job.id]).get(job.id)
        print_json(_job_json(job, steps, period))
        return
    print(f"job {job.id}: {job.type_name} [{job.state.label}]")
    print(f"  description: {job.description}")
    print(f"  parameters:  {json.dumps(job.parameters, ensure_ascii=False)}")
    print(f"  comment:     {job.comment or ''}")
    print(
        f"  created {short_time(job.created)}  started {short_time(job.started)}  "
        f"finished {short_time(job.finished)}  queued {job.queue_count}x  run {job.run_id or ''}"
    )
    print(f"  steps:       {step_counts(steps)}")
    for line in _job_notes(job):
        print(f"  {line}")
    print_table(
        ("step", "object", "alarm", "feature", "after", "state", "attempts", "data", "comment"),
        [
            (
                step.id,
                step.object_name,
                step.alarm_id,
                step.feature_name,
                ",".join(map(str, step.depends_on)),
                step.state.label,
                step.attempts,
                data_quality_text(step.details),
                step.comment,
            )
            for step in steps
        ],
    )


def step_counts(steps: Sequence[Any]) -> str:
    """`35 steps: 8 Finished, 27 not run`: steps that never started apart from failed ones."""
    from collections import Counter

    from jobs_pipeline.perfdb.step_dependencies import never_ran

    counts: Counter[str] = Counter(
        "not run" if step.state == JobState.FAILED and never_ran(step.comment) else step.state.label
        for step in steps
    )
    order = [state.label for state in JobState] + ["not run"]
    parts = [f"{counts[label]} {label}" for label in order if counts[label]]
    return f"{plural(len(steps), 'step')}" + (f": {', '.join(parts)}" if parts else "")


def data_quality_text(details: dict[str, Any] | None) -> str:
    """A step's data quality in a few words: `98.61 %, 1420 samples (3 NaN), 2 gaps 20 min`."""
    if not details or "coverage_percent" not in details:
        return ""
    from datetime import timedelta

    from jobs_pipeline.calc import format_duration

    parts = [f"{details['coverage_percent']:g} %"]
    if "samples_read" in details:
        nan = details.get("nan_samples") or 0
        parts.append(f"{details['samples_read']} samples" + (f" ({nan} NaN)" if nan else ""))
    gaps = details.get("gaps") or 0
    if gaps:
        gap_time = format_duration(timedelta(seconds=details.get("gap_seconds") or 0))
        parts.append(f"{plural(gaps, 'gap')} {gap_time}")
    return ", ".join(parts)


def _job_notes(job: Any) -> list[str]:
    """What a person should know beyond the columns: a pending cancel, a silent run, a job that
    no run has picked up for long."""
    from jobs_pipeline import settings
    from jobs_pipeline.perfdb.queue import utcnow

    notes = []
    now = utcnow()
    if job.cancel_requested is not None:
        notes.append(
            f"cancel requested by {job.cancel_requested_by or 'frontend'} at "
            f"{short_time(job.cancel_requested)}: its run is being terminated"
        )
    if job.state == JobState.RUNNING and job.heartbeat is not None:
        quiet = (now - job.heartbeat).total_seconds()
        if quiet > 2 * settings.HEARTBEAT_SECONDS.read():
            notes.append(
                f"warning: no heartbeat from run {job.run_id} for {quiet:.0f} s "
                f"(presumed dead after {settings.HEARTBEAT_SILENCE_SECONDS.read():.0f} s)"
            )
    if job.state == JobState.QUEUED:
        waited = (now - job.last_state_change).total_seconds()
        if waited > settings.QUEUED_WARNING_SECONDS.read():
            notes.append(
                f"warning: Queued for {waited / 60:.0f} min and no run has claimed it: "
                f"is the Dagster daemon (queue sensor) running?"
            )
    return notes


def cmd_job_delete(args: argparse.Namespace) -> None:
    open_perfdb(args).queue.delete_job(args.id)
    print(f"job {args.id} deleted")


def cmd_job_run(args: argparse.Namespace) -> None:
    from jobs_pipeline.cli.progress import JobProgress
    from jobs_pipeline.orchestration.launch import run_queued_job

    perfdb = open_perfdb(args)
    progress: JobProgress | None = None

    def launched(run_id: str, by_us: bool) -> None:
        nonlocal progress
        what = (
            f"run {run_id} launched for job {args.id}"
            if by_us
            else f"job {args.id} already has run {run_id} (the queue sensor's): waiting for it"
        )
        print(f"{what}; to cancel it: jobs-pipeline job cancel {args.id}", file=sys.stderr)
        progress = JobProgress(
            perfdb.queue, args.id, out=sys.stderr, tty=sys.stderr.isatty(), final_line=False
        )
        progress.__enter__()

    def poll() -> None:
        if progress is not None:
            progress.poll()

    try:
        outcome = run_queued_job(
            perfdb,
            args.id,
            timeout_seconds=args.timeout,
            on_launch=launched,
            on_poll=poll,
            # Off a terminal, the output holds this command's lines and Dagster's warnings.
            quiet=not sys.stdout.isatty(),
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
        from jobs_pipeline.cli.progress import follow

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
        raise Exit(1)  # the outcome above is the one line that says so


def cmd_job_watch(args: argparse.Namespace) -> None:
    from jobs_pipeline.cli.progress import follow

    perfdb = open_perfdb(args)
    try:
        job = follow(perfdb.queue, args.id, out=sys.stdout, tty=sys.stdout.isatty())
    except KeyboardInterrupt:
        _interrupted_run(perfdb, args.id, cancel=args.cancel)
        raise
    if job.state == JobState.FAILED:
        raise Exit(1)  # the last line of the progress said so


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
        was = job.state
        job = perfdb.queue.cancel_job(job_id, actor=ACTOR)
        print(f"job {job_id}: cancel requested ({job.state.label})", file=sys.stderr)
        if was == JobState.QUEUED and job.state == JobState.FAILED:
            _stop_runs_of_canceled_job(job)
    else:
        print(
            f"stopped waiting; job {job_id} goes on ({job.state.label}). "
            f"Follow it with 'jobs-pipeline job show {job_id}', "
            f"cancel it with 'jobs-pipeline job cancel {job_id}'",
            file=sys.stderr,
        )


def cmd_job_types(args: argparse.Namespace) -> None:
    types = open_perfdb(args).queue.job_types()
    if args.json:
        print_json(
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
    queue = open_perfdb(args).queue
    was = queue.get_job(args.id).state
    job = queue.cancel_job(args.id, actor=args.actor or ACTOR)
    if job.state == JobState.RUNNING:
        print(
            f"job {job.id}: cancel requested; its run starts no more steps (those not started "
            f"end Failed 'canceled, not run') and is terminated if a step keeps it busy"
        )
        return
    print(f"job {job.id} is {job.state.label} ({job.comment})")
    if was == JobState.QUEUED:
        _stop_runs_of_canceled_job(job)


def _stop_runs_of_canceled_job(job: Any) -> None:
    """A canceled Queued job's run may wait in Dagster's queue: it must never start."""
    from jobs_pipeline.orchestration.launch import stop_runs_of_canceled_job

    try:
        stopped = stop_runs_of_canceled_job(job)
    except Exception as error:  # the job is canceled; its run fails to claim it if it starts
        print(
            f"warning: job {job.id} is canceled, but its Dagster run could not be: {error}",
            file=sys.stderr,
        )
        return
    for run_id in stopped:
        print(f"run {run_id} canceled")
