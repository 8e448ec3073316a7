"""Argument types that name the problem in bad input, and the database that `--db` names."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from jobs_pipeline.perfdb.errors import PerfDBError


def positive_int(what: str) -> Callable[[str], int]:
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


def integer(what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer, got {text!r}") from None

    return parse


def finite_float(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{what} must be a finite number, got {text!r}")
        return value

    return parse


def duration(text: str) -> timedelta:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"minimum duration must be a number of seconds, got {text!r}"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"minimum duration must be >= 0 seconds, got {text!r}")
    return timedelta(seconds=value)


def sampling_period(what: str) -> Callable[[str], timedelta]:
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


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--params is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"--params must be a JSON object, got {type(value).__name__}"
        )
    return value


def job_state(text: str) -> Any:
    from jobs_pipeline.perfdb.states import JobState

    try:
        return JobState.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def open_perfdb(args: argparse.Namespace, *, needs_schema: bool = True) -> Any:
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
