"""Run tags that tie a Dagster run to its job in the performance database."""

from __future__ import annotations

JOB_ID_TAG = "jobs_pipeline/job_id"
JOB_TYPE_TAG = "jobs_pipeline/job_type"
QUEUE_COUNT_TAG = "jobs_pipeline/queue_count"
# The job's description, on one line and cut to `DESCRIPTION_TAG_LENGTH` characters: the runs
# list shows tags, so people see what each run is about.
DESCRIPTION_TAG = "jobs_pipeline/description"
DESCRIPTION_TAG_LENGTH = 100
# Dagster's own tags on a sensor's runs (`dagster._core.storage.tags`).
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
# Runs of jobs a schedule created: the schedule's name and the period, in UTC.
SCHEDULE_TAG = "jobs_pipeline/schedule"
PERIOD_START_TAG = "jobs_pipeline/period_start"
PERIOD_END_TAG = "jobs_pipeline/period_end"


def description_tag(description: str | None) -> dict[str, str]:
    """The description tag of a job's run; none for a job without a description."""
    text = " ".join((description or "").split())
    if not text:
        return {}
    if len(text) > DESCRIPTION_TAG_LENGTH:
        cut = text[: DESCRIPTION_TAG_LENGTH - 2]
        # At the last word boundary, unless that loses more than half of it.
        head = cut.rsplit(" ", 1)[0] if " " in cut[DESCRIPTION_TAG_LENGTH // 2 :] else cut
        text = head[: DESCRIPTION_TAG_LENGTH - 3].rstrip() + "..."
    return {DESCRIPTION_TAG: text}
