"""Job types by name: the class whose `_name` a `job_types` row carries."""

from __future__ import annotations

from typing import Any, TypeVar

from jobs_pipeline.jobs.base import JobInstance
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import NotFound
from jobs_pipeline.perfdb.migrate import upgrade
from jobs_pipeline.perfdb.records import Job, JobTypeSpec

JobClass = TypeVar("JobClass", bound=type[JobInstance])

_JOB_TYPES: dict[str, type[JobInstance]] = {}


def register(job_class: JobClass) -> JobClass:
    """Class decorator that makes a job type known by its `_name`."""
    name = job_class._name
    if not name:
        raise ValueError(f"{job_class.__qualname__} has no _name")
    existing = _JOB_TYPES.get(name)
    if existing is not None and existing is not job_class:
        raise ValueError(f"job type {name!r} is already registered by {existing.__qualname__}")
    _JOB_TYPES[name] = job_class
    return job_class


def job_type(name: str) -> type[JobInstance]:
    try:
        return _JOB_TYPES[name]
    except KeyError:
        known = ", ".join(repr(known) for known in sorted(_JOB_TYPES))
        raise NotFound(f"unknown job type {name!r} (known: {known or 'none'})") from None


def job_type_specs() -> list[JobTypeSpec]:
    """What `db upgrade` writes into `job_types`."""
    return [
        JobTypeSpec(
            name=name,
            description=job_class._description,
            parameters_schema=job_class._parameters_schema,
        )
        for name, job_class in sorted(_JOB_TYPES.items())
    ]


def load_job(perfdb: PerfDB, job_id: int) -> JobInstance:
    """The job bound to the class of its type, in whatever state it is."""
    job = perfdb.queue.get_job(job_id)
    return job_type(job.type_name).load(job_id, perfdb=perfdb, job=job)


def check_job_parameters(perfdb: PerfDB, type_name: str, parameters: Any) -> None:
    """The type's JSON Schema, then the checks it cannot express (dates, references)."""
    job_class = job_type(type_name)
    perfdb.queue.validate_parameters(type_name, parameters)
    job_class.check_parameters(perfdb, parameters)


def create_job(
    perfdb: PerfDB,
    type_name: str,
    parameters: Any,
    *,
    description: str = "",
    queue: bool = False,
    actor: str = "api",
) -> Job:
    """Creates (and optionally queues) a job after every parameter check has passed."""
    check_job_parameters(perfdb, type_name, parameters)
    return perfdb.queue.create_job(
        type_name, parameters, description=description, queue=queue, actor=actor
    )


def check_queued_job(perfdb: PerfDB, job: Job) -> None:
    """Re-checks a row someone else wrote (the frontend writes rows directly)."""
    check_job_parameters(perfdb, job.type_name, job.parameters)


def upgrade_database(perfdb: PerfDB) -> None:
    """Applies the migrations, then writes every registered job type into `job_types`."""
    upgrade(perfdb.engine)
    perfdb.queue.upsert_job_types(job_type_specs())
