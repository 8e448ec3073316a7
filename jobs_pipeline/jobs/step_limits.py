"""The limits of a step's life besides its heartbeat: how long it may run (per job type) and how
long its run may wait for a worker to pick it up.

`JOBS_PIPELINE_MAX_STEP_SECONDS` overrides the job types' `_max_step_seconds`: a number applies
to every type, `NAME=SECONDS` entries to one type each, separated by commas
(`3600, Data Import=86400`). `JOBS_PIPELINE_STEP_PICKUP_SECONDS` bounds the wait for a worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from jobs_pipeline import settings
from jobs_pipeline.calc.data_quality import format_duration
from jobs_pipeline.jobs.base import JobInstance
from jobs_pipeline.jobs.registry import job_type, job_type_specs
from jobs_pipeline.perfdb.errors import NotFound


def max_step_seconds(type_name: str, environ: Mapping[str, str] | None = None) -> float:
    """How long a step of this job type may run: the setting, else the type's class attribute
    (the base class's for a type this process does not know)."""
    limits = settings.MAX_STEP_SECONDS.read(environ)
    if type_name in limits.by_type:
        return limits.by_type[type_name]
    if limits.every_type is not None:
        return limits.every_type
    try:
        return job_type(type_name)._max_step_seconds
    except NotFound:
        return JobInstance._max_step_seconds


def shortest_max_step_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The shortest limit of any job type: steps younger than this need no closer look."""
    by_type = settings.MAX_STEP_SECONDS.read(environ).by_type
    names = {spec.name for spec in job_type_specs()} | set(by_type) | {""}
    return min(max_step_seconds(name, environ) for name in names)


def human_duration(seconds: float) -> str:
    """`5 s`, `10 min`, `1 h`, `1 h 30 min`."""
    return format_duration(timedelta(seconds=seconds))
