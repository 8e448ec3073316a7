"""Sensors: the queue sensor that launches runs, and the reconciler of runs that die."""

import json

import dagster as dg
import sqlalchemy as sa

from jobs_pipeline.jobs.registry import check_queued_job
from jobs_pipeline.orchestration.ops import PLAN_OP_NAME, PlanConfig
from jobs_pipeline.orchestration.resources import PerfDBResource
from jobs_pipeline.perfdb.errors import InputError
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import JobState

JOB_ID_TAG = "jobs_pipeline/job_id"
JOB_TYPE_TAG = "jobs_pipeline/job_type"
QUEUE_COUNT_TAG = "jobs_pipeline/queue_count"
SENSOR_BATCH_SIZE = 50
SENSOR_ACTOR = "sensor"


def run_key(job: Job) -> str:
    """A requeued job gets a new key (Dagster runs a key once, ever)."""
    return f"job-{job.id}-{job.queue_count}"


def run_tags(job: Job) -> dict[str, str]:
    return {
        JOB_ID_TAG: str(job.id),
        JOB_TYPE_TAG: job.type_name,
        QUEUE_COUNT_TAG: str(job.queue_count),
    }


def run_request(job: Job) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key(job),
        run_config=dg.RunConfig(ops={PLAN_OP_NAME: PlanConfig(job_id=job.id)}),
        tags=run_tags(job),
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


# The daemon's sensor loop sets the pace (1 s with the run coordinator of dagster.yaml, 5 s by
# Dagster's default); a minimum of 1 s lets every pass of that loop look at the queue.
QUEUE_SENSOR_INTERVAL_SECONDS = 1


def queue_sensor_factory(
    job_def: dg.JobDefinition, *, minimum_interval_seconds: int = QUEUE_SENSOR_INTERVAL_SECONDS
):
    @dg.sensor(
        name="perfdb_queue_sensor",
        job=job_def,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Launches one run per Queued job of the performance database.",
    )
    def perfdb_queue_sensor(context: dg.SensorEvaluationContext, perfdb: PerfDBResource):
        db = perfdb.get()
        # Pages through the queue in id order; a job whose run is launched but not yet started
        # stays Queued, and Dagster drops its repeated run key, so the cursor moves on.
        after_id = _read_cursor(context.cursor)
        jobs = db.queue.list_jobs(
            state=JobState.QUEUED,
            after_id=after_id,
            limit=SENSOR_BATCH_SIZE,
            exclude_test_jobs=perfdb.skip_test_jobs,
        )
        requests: list[dg.RunRequest] = []
        failed: list[str] = []
        for job in jobs:
            try:
                check_queued_job(db, job)
            except (InputError, *VALUE_ERRORS) as error:
                comment = f"not launched: {_reason(error)}"
                try:
                    db.queue.fail_job(job.id, comment, actor=SENSOR_ACTOR)
                    failed.append(f"job {job.id}: {error}")
                except InputError:
                    pass  # someone else changed it meanwhile; the next tick sees the new state
                continue
            requests.append(run_request(job))
        next_after = jobs[-1].id if len(jobs) == SENSOR_BATCH_SIZE else 0
        context.update_cursor(json.dumps({"after_id": next_after}))
        for message in failed:
            context.log.warning(message)
        if not requests:
            seen = f"{len(jobs)} queued jobs after id {after_id}" if jobs else "no queued jobs"
            detail = f"; failed {len(failed)} malformed" if failed else ""
            return dg.SkipReason(f"{seen}{detail}")
        return dg.SensorResult(run_requests=requests)

    return perfdb_queue_sensor


def _reconcile(context: dg.RunStatusSensorContext, perfdb: PerfDBResource, what: str) -> None:
    run = context.dagster_run
    if JOB_ID_TAG not in run.tags and run.parent_run_id is None:
        return
    message = f"run {run.run_id} {what}"
    # Only a failure sensor's context has a failure event; a status sensor's has no such attribute.
    failure = context.failure_event if isinstance(context, dg.RunFailureSensorContext) else None
    if failure is not None and failure.message:
        message += f": {failure.message.splitlines()[0]}"
    results = perfdb.get().queue.fail_running_steps_of_run(
        run.run_id, message, actor=f"sensor:{what}"
    )
    if results:
        context.log.info(f"{message}; marked {len(results)} steps/jobs Failed")


def reconcile_sensors(job_def: dg.JobDefinition) -> list[dg.SensorDefinition]:
    @dg.run_failure_sensor(
        name="perfdb_failed_run_sensor",
        monitored_jobs=[job_def],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
        description="Marks the steps a failed or crashed run left Running as Failed.",
    )
    def perfdb_failed_run_sensor(context: dg.RunFailureSensorContext, perfdb: PerfDBResource):
        _reconcile(context, perfdb, "failed")

    @dg.run_status_sensor(
        name="perfdb_canceled_run_sensor",
        run_status=dg.DagsterRunStatus.CANCELED,
        monitored_jobs=[job_def],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
        description="Marks the steps a canceled run left Running as Failed.",
    )
    def perfdb_canceled_run_sensor(context: dg.RunStatusSensorContext, perfdb: PerfDBResource):
        _reconcile(context, perfdb, "was canceled")

    @dg.run_status_sensor(
        name="perfdb_succeeded_run_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[job_def],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=5,
        description="Finalises a job whose run succeeded without re-running all its failed steps "
        "(a re-execution of selected steps).",
    )
    def perfdb_succeeded_run_sensor(context: dg.RunStatusSensorContext, perfdb: PerfDBResource):
        _reconcile(context, perfdb, "succeeded without re-running every failed step")

    return [perfdb_failed_run_sensor, perfdb_canceled_run_sensor, perfdb_succeeded_run_sensor]
