"""The queue sensor: one run per Queued job (the reconciler lives in `reconciler.py`)."""

import json

import dagster as dg
import sqlalchemy as sa

from jobs_pipeline.jobs.base import is_test_job
from jobs_pipeline.jobs.registry import check_queued_job, job_type
from jobs_pipeline.orchestration.execution import PROFILE_TAG, Profile, profile_for
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, PlanConfig
from jobs_pipeline.orchestration.quiet_logs import DATABASE_UNREACHABLE, run_console_level
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.orchestration.scheduler import schedule_tags
from jobs_pipeline.orchestration.tags import (
    JOB_ID_TAG,
    JOB_TYPE_TAG,
    QUEUE_COUNT_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
    description_tag,
)
from jobs_pipeline.perfdb.errors import InputError, is_transient
from jobs_pipeline.perfdb.queue import bounded
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.schedules import SchedulePeriod
from jobs_pipeline.perfdb.states import Actor, JobState

__all__ = ["JOB_ID_TAG", "JOB_TYPE_TAG", "QUEUE_COUNT_TAG", "queue_sensor_factory", "run_request"]

SENSOR_BATCH_SIZE = 50
# A test job this deployment skips ends with a word, not silently Queued.
TEST_JOB_COMMENT = (
    'not run: a test job (its description has the word "test") and this deployment skips '
    "test jobs (PerfDBResource skip_test_jobs)"
)
QUEUE_SENSOR_NAME = "perfdb_queue_sensor"
SENSOR_ACTOR = f"sensor:{QUEUE_SENSOR_NAME}"


def run_key(job: Job) -> str:
    """A requeued job gets a new key (Dagster runs a key once, ever)."""
    return f"job-{job.id}-{job.queue_count}"


def run_tags(
    job: Job, profile: Profile = Profile.IN_PROCESS, period: SchedulePeriod | None = None
) -> dict[str, str]:
    return {
        JOB_ID_TAG: str(job.id),
        JOB_TYPE_TAG: job.type_name,
        QUEUE_COUNT_TAG: str(job.queue_count),
        PROFILE_TAG: profile.value,
        **description_tag(job.description),
        **(schedule_tags(period) if period is not None else {}),
    }


def run_request(job: Job, period: SchedulePeriod | None = None) -> dg.RunRequest:
    """The run of a job, under the execution profile the deployment sets for its type; a job
    a schedule created (`period`) also carries the schedule's tags."""
    profile = profile_for(job_type(job.type_name)._heavy_steps)
    return dg.RunRequest(
        run_key=run_key(job),
        job_name=profile.job_name,
        run_config=dg.RunConfig(
            ops={PLAN_OP_NAME: PlanConfig(job_id=job.id)},
            # Step events stay in the UI; the console of `dagster dev` shows INFO and above.
            loggers={"console": {"config": {"log_level": run_console_level()}}},
        ),
        tags=run_tags(job, profile, period),
    )


# Values a row can hold that its checks cannot represent (an alarm id beyond the column's
# range, a date beyond year 9999 once in UTC): malformed rows too, not failures of the sensor.
VALUE_ERRORS = (OverflowError, sa.exc.DataError)


def _reason(error: Exception) -> str:
    if isinstance(error, sa.exc.DBAPIError) and error.orig is not None:
        error = error.orig
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _read_cursor(cursor: str | None) -> int:
    try:
        return int(json.loads(cursor)["after_id"]) if cursor else 0
    except (ValueError, KeyError, TypeError):
        return 0


def _launched(context: dg.SensorEvaluationContext, jobs: list[Job]) -> set[str]:
    """The run keys of these jobs that already have a run of this sensor or of `job run` (which
    tags its run with the same key): the job waits for it (in Dagster's run queue, or
    starting), a second run would only fail to claim it, and checking the row again costs
    queries on every tick of a long queue. On a Dagster storage error, none (Dagster still drops
    repeated keys of this sensor)."""
    if not jobs:
        return set()
    try:
        records = context.instance.get_run_records(
            filters=dg.RunsFilter(tags={RUN_KEY_TAG: [run_key(job) for job in jobs]})
        )
    except Exception as error:
        context.log.warning(f"could not read the runs of queued jobs: {error}")
        return set()
    return {
        record.dagster_run.tags[RUN_KEY_TAG]
        for record in records
        # Launched by this sensor, or by `job run` (no sensor, the job's own tags).
        if record.dagster_run.tags.get(SENSOR_NAME_TAG, QUEUE_SENSOR_NAME) == QUEUE_SENSOR_NAME
        and JOB_ID_TAG in record.dagster_run.tags
    }


# The daemon's sensor loop sets the pace (1 s with the run coordinator of dagster.yaml, 5 s by
# Dagster's default); a minimum of 1 s lets every pass of that loop look at the queue.
QUEUE_SENSOR_INTERVAL_SECONDS = 1


def queue_sensor_factory(
    job_defs: list[dg.JobDefinition],
    *,
    minimum_interval_seconds: int = QUEUE_SENSOR_INTERVAL_SECONDS,
):
    @dg.sensor(
        name=QUEUE_SENSOR_NAME,
        jobs=job_defs,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches one run per Queued job of the performance database.",
    )
    def perfdb_queue_sensor(context: dg.SensorEvaluationContext, perfdb: PerfDBResource):
        db = perfdb.get()
        # Pages through the queue in id order; a job whose run is launched but not yet started
        # stays Queued, and Dagster drops its repeated run key, so the cursor moves on.
        after_id = _read_cursor(context.cursor)
        try:
            jobs = db.queue.list_jobs(
                state=JobState.QUEUED, after_id=after_id, limit=SENSOR_BATCH_SIZE
            )
        except Exception as error:
            if not is_transient(error):
                raise
            # The database is restarting: the next tick tries again, nothing is lost.
            return dg.SkipReason(f"{DATABASE_UNREACHABLE}: {error}")
        launched = _launched(context, jobs)
        periods = db.schedules.periods_of_jobs(
            [job.id for job in jobs if run_key(job) not in launched]
        )
        requests: list[dg.RunRequest] = []
        failed: list[str] = []
        skipped = 0
        for job in jobs:
            if run_key(job) in launched:
                continue
            if perfdb.skip_test_jobs and is_test_job(job.description):
                try:
                    db.queue.fail_job(
                        job.id,
                        TEST_JOB_COMMENT,
                        who=Actor.SENSOR,
                        actor=SENSOR_ACTOR,
                        queue_count=job.queue_count,
                    )
                    context.log.info(f"job {job.id}: {TEST_JOB_COMMENT}")
                    skipped += 1
                except InputError:
                    pass  # someone else changed it meanwhile; the next tick sees the new state
                continue
            try:
                check_queued_job(db, job)
            except (InputError, *VALUE_ERRORS) as error:
                comment = bounded(f"not launched: {_reason(error)}")
                try:
                    db.queue.fail_job(job.id, comment, who=Actor.SENSOR, actor=SENSOR_ACTOR)
                    failed.append(f"job {job.id}: {comment}")
                except InputError:
                    pass  # someone else changed it meanwhile; the next tick sees the new state
                continue
            requests.append(run_request(job, periods.get(job.id)))
        next_after = jobs[-1].id if len(jobs) == SENSOR_BATCH_SIZE else 0
        context.update_cursor(json.dumps({"after_id": next_after}))
        for message in failed:
            context.log.warning(message)
        if not requests:
            seen = f"{len(jobs)} queued jobs after id {after_id}" if jobs else "no queued jobs"
            detail = f"; failed {len(failed)} malformed" if failed else ""
            if skipped:
                detail += f"; skipped {skipped} test jobs"
            if launched:
                detail += f"; {len(launched)} waiting for their runs"
            return dg.SkipReason(f"{seen}{detail}")
        return dg.SensorResult(run_requests=requests)

    return perfdb_queue_sensor
