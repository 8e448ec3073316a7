"""Run tags that tie a Dagster run to its job in the performance database."""

from __future__ import annotations

JOB_ID_TAG = "jobs_pipeline/job_id"
JOB_TYPE_TAG = "jobs_pipeline/job_type"
QUEUE_COUNT_TAG = "jobs_pipeline/queue_count"
# Dagster's own tags on a sensor's runs (`dagster._core.storage.tags`).
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
# Runs of jobs a schedule created: the schedule's name and the period, in UTC.
SCHEDULE_TAG = "jobs_pipeline/schedule"
PERIOD_START_TAG = "jobs_pipeline/period_start"
PERIOD_END_TAG = "jobs_pipeline/period_end"
