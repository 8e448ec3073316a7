"""Run tags that tie a Dagster run to its job in the performance database."""

from __future__ import annotations

JOB_ID_TAG = "jobs_pipeline/job_id"
JOB_TYPE_TAG = "jobs_pipeline/job_type"
QUEUE_COUNT_TAG = "jobs_pipeline/queue_count"
