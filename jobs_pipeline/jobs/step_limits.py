"""The limits of a step's life besides its heartbeat: how long it may run (per job type) and how
long its run may wait for a worker to pick it up.

`JOBS_PIPELINE_MAX_STEP_SECONDS` overrides the job types' `_max_step_seconds`: a number applies
to every type, `NAME=SECONDS` entries to one type each, separated by commas
(`3600, Data Import=86400`). `JOBS_PIPELINE_STEP_PICKUP_SECONDS` bounds the wait for a worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from jobs_pipeline.calc.data_quality import format_duration
from jobs_pipeline.jobs.base import JobInstance
from jobs_pipeline.jobs.registry import job_type, job_type_specs
from jobs_pipeline.perfdb.errors import InputError, NotFound
from jobs_pipeline.perfdb.heartbeat import seconds_from_env

MAX_STEP_SECONDS_ENV = "JOBS_PIPELINE_MAX_STEP_SECONDS"
STEP_PICKUP_SECONDS_ENV = "JOBS_PIPELINE_STEP_PICKUP_SECONDS"
DEFAULT_STEP_PICKUP_SECONDS = 600.0


def _positive_seconds(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise InputError(f"{MAX_STEP_SECONDS_ENV}: {what} must be a positive number of seconds")
    return value


def parse_max_step_seconds(text: str) -> tuple[float | None, dict[str, float]]:
    """The setting's default for every type (or None) and its limits by type name."""
    default: float | None = None
    by_type: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, equals, seconds = entry.rpartition("=")
        if not equals:
            default = _positive_seconds(entry, repr(entry))
            continue
        name = name.strip()
        if not name:
            raise InputError(f"{MAX_STEP_SECONDS_ENV}: {entry!r} names no job type")
        by_type[name] = _positive_seconds(seconds.strip(), f"the limit of {name!r}")
    return default, by_type


def max_step_seconds(type_name: str, environ: Mapping[str, str] | None = None) -> float:
    """How long a step of this job type may run: the setting, else the type's class attribute
    (the base class's for a type this process does not know)."""
    env = os.environ if environ is None else environ
    default, by_type = parse_max_step_seconds(env.get(MAX_STEP_SECONDS_ENV, ""))
    if type_name in by_type:
        return by_type[type_name]
    if default is not None:
        return default
    try:
        return job_type(type_name)._max_step_seconds
    except NotFound:
        return JobInstance._max_step_seconds


def shortest_max_step_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The shortest limit of any job type: steps younger than this need no closer look."""
    env = os.environ if environ is None else environ
    _, by_type = parse_max_step_seconds(env.get(MAX_STEP_SECONDS_ENV, ""))
    names = {spec.name for spec in job_type_specs()} | set(by_type) | {""}
    return min(max_step_seconds(name, env) for name in names)


def step_pickup_seconds() -> float:
    """How long a run's steps may wait, with none running, for a worker to pick one up
    (`JOBS_PIPELINE_STEP_PICKUP_SECONDS`, default 10 min)."""
    return seconds_from_env(STEP_PICKUP_SECONDS_ENV, DEFAULT_STEP_PICKUP_SECONDS)


def human_duration(seconds: float) -> str:
    """`5 s`, `10 min`, `1 h`, `1 h 30 min`."""
    return format_duration(timedelta(seconds=seconds))
