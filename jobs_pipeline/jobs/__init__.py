"""Job types. Importing this package registers every built-in type."""

from jobs_pipeline.jobs import alarm_calc, data_import, feature_calc
from jobs_pipeline.jobs.base import JobInstance, JobStepError, StepOutcome
from jobs_pipeline.jobs.registry import (
    check_job_parameters,
    create_job,
    job_type,
    job_type_specs,
    load_job,
    register,
    upgrade_database,
)

JobAlarmCalc = alarm_calc.JobAlarmCalc
JobDataImport = data_import.JobDataImport
JobFeatureCalc = feature_calc.JobFeatureCalc

__all__ = [
    "JobAlarmCalc",
    "JobDataImport",
    "JobFeatureCalc",
    "JobInstance",
    "JobStepError",
    "StepOutcome",
    "check_job_parameters",
    "create_job",
    "job_type",
    "job_type_specs",
    "load_job",
    "register",
    "upgrade_database",
]
