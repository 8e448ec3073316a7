"""The queue sensor against a real performance database (SQLite and PostgreSQL): which queued rows
become runs, with which keys, tags and config; malformed rows; paging; the cost of its query."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from jobs_pipeline.definitions import defs
from jobs_pipeline.jobs import JobAlarmCalc
from jobs_pipeline.jobs.base import is_test_job
from jobs_pipeline.orchestration import sensors
from jobs_pipeline.orchestration.execution import PROFILE_TAG
from jobs_pipeline.orchestration.resources import PerfDBResource, shared_perfdb
from jobs_pipeline.orchestration.sensors import (
    JOB_ID_TAG,
    JOB_TYPE_TAG,
    QUEUE_COUNT_TAG,
    SENSOR_ACTOR,
    TEST_JOB_COMMENT,
    run_tags,
)
from jobs_pipeline.orchestration.tags import (
    DESCRIPTION_TAG,
    DESCRIPTION_TAG_LENGTH,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
    description_tag,
)
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import Job
from jobs_pipeline.perfdb.states import Actor, JobState
from jobs_pipeline_tests.orchestration.alarm_fleet import (
    ALARM_CALC,
    ALARM_IDS,
    PERIOD,
    WITH_DATA,
    alarm_job,
)
from jobs_pipeline_tests.orchestration.perfdb_job_config import plan_config
from jobs_pipeline_tests.orchestration.sensor_ticks import Tick, tick

STATE_INDEX = "ix_job_instances_state_id_id"
FINISHED_ROWS = 200_000


def keys(*jobs: Job) -> list[str]:
    return [f"job-{job.id}-{job.queue_count}" for job in jobs]


def cursor_after(job_id: int) -> str:
    return json.dumps({"after_id": job_id})


def set_parameters(perfdb: PerfDB, job_id: int, parameters: str) -> None:
    """Writes the parameters JSON the way a frontend writing rows directly could."""
    with perfdb.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE job_instances SET parameters = :parameters WHERE id = :id"),
            {"parameters": parameters, "id": job_id},
        )


def queued_by_sql(perfdb: PerfDB, parameters: str) -> Job:
    """A Queued job inserted with plain SQL, as a frontend may: no JSON Schema check at all."""
    json_value = (
        "CAST(:parameters AS jsonb)"
        if perfdb.engine.dialect.name == "postgresql"
        else ":parameters"
    )
    with perfdb.engine.begin() as connection:
        job_id = connection.execute(
            sa.text(
                "INSERT INTO job_instances (type_id, state_id, parameters, description) "
                f"SELECT id, :state, {json_value}, 'nightly alarms' FROM job_types "
                "WHERE name = :name RETURNING id"
            ),
            {"state": int(JobState.QUEUED), "parameters": parameters, "name": ALARM_CALC},
        ).scalar_one()
    return perfdb.queue.get_job(job_id)


def raw_parameters(**changes: Any) -> dict[str, Any]:
    return {"object_names": list(WITH_DATA), "alarm_ids": list(ALARM_IDS), **PERIOD, **changes}


# --- queued jobs become runs -------------------------------------------------------------------


def test_each_queued_job_becomes_one_run_request(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    first = alarm_job(seeded_db)
    alarm_job(seeded_db, queue=False)  # Created: not yet submitted
    running = alarm_job(seeded_db)
    seeded_db.queue.claim_job(running.id, "run-elsewhere")
    second = alarm_job(seeded_db, WITH_DATA)

    result = tick(perfdb_resource)

    assert result.skip_reason is None
    assert result.run_keys == keys(first, second)
    job_def = defs.get_job_def("perfdb_job")
    for request, job in zip(result.run_requests, (first, second), strict=True):
        assert request.job_name == "perfdb_job"
        assert request.tags == {
            JOB_ID_TAG: str(job.id),
            JOB_TYPE_TAG: ALARM_CALC,
            QUEUE_COUNT_TAG: "1",
            PROFILE_TAG: "in_process",
            # The runs list shows what the run is about.
            DESCRIPTION_TAG: "nightly alarms",
        }
        run_config = request.run_config
        assert run_config["ops"] == plan_config(job.id)["ops"]
        assert not any(run_config.get(key) for key in ("resources", "execution"))
        # Step events stay in the UI: the run's console shows INFO and above.
        assert run_config["loggers"] == {"console": {"config": {"log_level": "INFO"}}}
        assert dg.validate_run_config(job_def, run_config)
    # Launching is the run's business: the sensor leaves the rows Queued.
    assert [seeded_db.queue.get_job(job.id).state for job in (first, second)] == [
        JobState.QUEUED,
        JobState.QUEUED,
    ]
    assert result.cursor == cursor_after(0)


def test_test_jobs_are_skipped_with_a_comment_unless_configured(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, perfdb_url: str
) -> None:
    test_job = alarm_job(seeded_db, description="TEST of the new thresholds")
    real_job = alarm_job(seeded_db, description="nightly alarms")
    # The word "test", not the letters: these are real jobs.
    latest = alarm_job(seeded_db, description="latest alarms")
    fastest = alarm_job(seeded_db, description="the fastest turbines; contest entries")

    launch_all = PerfDBResource(url=perfdb_url, skip_test_jobs=False)
    assert tick(launch_all).run_keys == keys(test_job, real_job, latest, fastest)

    assert tick(perfdb_resource).run_keys == keys(real_job, latest, fastest)
    skipped = seeded_db.queue.get_job(test_job.id)
    assert (skipped.state, skipped.comment) == (JobState.FAILED, TEST_JOB_COMMENT)
    assert 'the word "test"' in TEST_JOB_COMMENT


@pytest.mark.parametrize(
    ("description", "is_test"),
    [
        ("test run", True),
        ("TEST of the new thresholds", True),
        ("unit tests, please ignore", True),
        ("re-test: LAN-01", True),
        ("latest alarms", False),
        ("fastest turbines", False),
        ("contest", False),
        ("testing", False),
        ("", False),
    ],
)
def test_a_test_job_is_told_by_the_word(description: str, is_test: bool) -> None:
    assert is_test_job(description) is is_test


def test_malformed_rows_fail_with_a_comment_and_the_others_still_launch(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    queue = seeded_db.queue
    # `queue.create_job` checks only the JSON Schema, like a frontend writing rows directly.
    bad_date = queue.create_job(ALARM_CALC, raw_parameters(start="2024-02-30 00:00:00"), queue=True)
    good = alarm_job(seeded_db)
    unknown_object = queue.create_job(
        ALARM_CALC, raw_parameters(object_names=["LAN-01", "LAN-99"]), queue=True
    )
    bad_type = queued_by_sql(seeded_db, json.dumps(raw_parameters(alarm_ids="1001")))
    out_of_range = queued_by_sql(seeded_db, json.dumps(raw_parameters(alarm_ids=[10**20])))
    with seeded_db.engine.begin() as connection:
        # A type the database knows but this code location does not (retired, or not deployed).
        connection.execute(
            sa.text(
                "INSERT INTO job_types (name, description, parameters_schema) "
                "VALUES ('Retired Type', '', '{\"type\": \"object\"}')"
            )
        )
    unregistered = queue.create_job("Retired Type", {}, queue=True)
    last = alarm_job(seeded_db, WITH_DATA)
    history = {job.id: queue.history(job.id) for job in (good, last)}

    result = tick(perfdb_resource)

    assert result.run_keys == keys(good, last)
    expected = {
        bad_date.id: "not launched: parameter 'start': malformed date '2024-02-30 00:00:00'",
        unknown_object.id: "not launched: ",
        bad_type.id: "not launched: invalid parameters for 'Alarm Calculation': "
        "parameter 'alarm_ids': '1001' is not of type 'array'",
        out_of_range.id: "not launched: ",
        unregistered.id: "not launched: unknown job type 'Retired Type'",
    }
    for job_id, prefix in expected.items():
        job = queue.get_job(job_id)
        assert job.state == JobState.FAILED, job
        assert job.comment is not None and job.comment.startswith(prefix), job.comment
        assert job.finished is not None
        entry = queue.history(job_id)[-1]
        assert (entry.from_state, entry.to_state, entry.actor, entry.comment) == (
            JobState.QUEUED,
            JobState.FAILED,
            SENSOR_ACTOR,
            job.comment,
        )
        assert queue.get_steps(job_id) == []
    assert "LAN-99" in (queue.get_job(unknown_object.id).comment or "")
    assert "\n" not in (queue.get_job(out_of_range.id).comment or "")
    # The well-formed jobs are untouched, and a failed row is not looked at again.
    assert {job.id: queue.history(job.id) for job in (good, last)} == history
    assert tick(perfdb_resource).run_keys == keys(good, last)


def test_a_requeued_job_gets_a_new_run_key(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    failed = alarm_job(seeded_db)
    finished = alarm_job(seeded_db, WITH_DATA)
    assert tick(perfdb_resource).run_keys == keys(failed, finished)
    seeded_db.queue.claim_job(failed.id, "run-1")
    seeded_db.queue.fail_job(
        failed.id, "run-1 died", from_states=(JobState.RUNNING,), who=Actor.RUN, run_id="run-1"
    )
    assert JobAlarmCalc(finished.id, perfdb=seeded_db).run() == []
    assert tick(perfdb_resource).skip_reason == "no queued jobs"

    requeued = [seeded_db.queue.queue_job(job.id) for job in (failed, finished)]

    result = tick(perfdb_resource)
    assert result.run_keys == [f"job-{failed.id}-2", f"job-{finished.id}-2"]
    assert [request.tags[QUEUE_COUNT_TAG] for request in result.run_requests] == ["2", "2"]
    assert [request.tags for request in result.run_requests] == [run_tags(j) for j in requeued]


def sensor_run(
    instance: dg.DagsterInstance, key: str, sensor: str | None = "perfdb_queue_sensor"
) -> None:
    """A run that a sensor created with this run key (waiting in Dagster's run queue); with
    `sensor` None, the run `job run` created."""
    job_id = key.split("-")[1]
    tags = {RUN_KEY_TAG: key, JOB_ID_TAG: job_id}
    if sensor is not None:
        tags[SENSOR_NAME_TAG] = sensor
    instance.add_run(dg.DagsterRun(job_name="perfdb_job", tags=tags))


def test_a_job_whose_run_exists_is_left_to_that_run(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    waiting, fresh, elsewhere, by_hand = (alarm_job(seeded_db, WITH_DATA) for _ in range(4))
    with dg.DagsterInstance.ephemeral() as instance:
        sensor_run(instance, *keys(waiting))
        sensor_run(instance, *keys(elsewhere), sensor="someone_elses_sensor")
        sensor_run(instance, *keys(by_hand), sensor=None)  # `job run` launched it
        # Its row is not checked again; nor can it go bad meanwhile: the database refuses to
        # edit a Queued job.
        with pytest.raises(sa.exc.IntegrityError, match=r"jobs_pipeline: .*edit"):
            set_parameters(seeded_db, waiting.id, json.dumps(raw_parameters(start="yesterday")))

        result = tick(perfdb_resource, instance=instance)

        assert result.run_keys == keys(fresh, elsewhere)
        assert seeded_db.queue.get_job(waiting.id).state == JobState.QUEUED
        sensor_run(instance, *keys(fresh))
        sensor_run(instance, *keys(elsewhere))
        assert tick(perfdb_resource, instance=instance).skip_reason == (
            "4 queued jobs after id 0; 4 waiting for their runs"
        )


def test_without_dagsters_runs_every_queued_job_is_requested(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [alarm_job(seeded_db, WITH_DATA) for _ in range(2)]
    with dg.DagsterInstance.ephemeral() as instance:
        sensor_run(instance, *keys(jobs[0]))

        def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("Dagster storage unreachable")

        monkeypatch.setattr(instance, "get_run_records", unreachable)
        # Dagster drops the repeated key itself.
        assert tick(perfdb_resource, instance=instance).run_keys == keys(*jobs)


def test_skip_reason_says_what_the_sensor_saw(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource
) -> None:
    assert tick(perfdb_resource) == Tick([], "no queued jobs", cursor_after(0))

    alarm_job(seeded_db, queue=False)
    alarm_job(seeded_db, description="test run")
    assert tick(perfdb_resource).skip_reason == "1 queued jobs after id 0; skipped 1 test jobs"
    assert tick(perfdb_resource).skip_reason == "no queued jobs"

    malformed = seeded_db.queue.create_job(
        ALARM_CALC, raw_parameters(object_names=["LAN-99"]), queue=True
    )
    result = tick(perfdb_resource)
    assert result.skip_reason == "1 queued jobs after id 0; failed 1 malformed"
    assert seeded_db.queue.get_job(malformed.id).state == JobState.FAILED


def test_the_cursor_pages_through_the_queue_in_batches(
    seeded_db: PerfDB, perfdb_resource: PerfDBResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sensors, "SENSOR_BATCH_SIZE", 2)
    # A malformed row inside a batch still moves the cursor on.
    jobs = [
        queued_by_sql(seeded_db, json.dumps(raw_parameters(start="yesterday")))
        if position == 1
        else alarm_job(seeded_db, WITH_DATA)
        for position in range(5)
    ]

    first = tick(perfdb_resource)
    assert (first.run_keys, first.cursor) == (keys(jobs[0]), cursor_after(jobs[1].id))
    second = tick(perfdb_resource, first.cursor)
    assert (second.run_keys, second.cursor) == (keys(*jobs[2:4]), cursor_after(jobs[3].id))
    third = tick(perfdb_resource, second.cursor)
    # A short batch is the end of the queue: the next tick starts again from the front, where
    # jobs whose runs have not claimed them yet are asked for again (Dagster drops repeated keys).
    assert (third.run_keys, third.cursor) == (keys(jobs[4]), cursor_after(0))
    again = tick(perfdb_resource, third.cursor)
    assert (again.run_keys, again.cursor) == (keys(jobs[0], jobs[2]), cursor_after(jobs[2].id))
    assert seeded_db.queue.get_job(jobs[1].id).state == JobState.FAILED

    # A cursor the sensor cannot read starts from the front.
    assert tick(perfdb_resource, "not json").run_keys == keys(jobs[0], jobs[2])


# --- the cost of the sensor's query --------------------------------------------------------------


@pytest.fixture
def pg_db(pg_perfdb_url: str) -> Iterator[PerfDB]:
    perfdb = PerfDB.connect(pg_perfdb_url)
    yield perfdb
    perfdb.dispose()
    shared_perfdb(pg_perfdb_url).dispose()


def test_the_queue_query_uses_the_state_index_whatever_the_history(
    pg_db: PerfDB, pg_perfdb_url: str
) -> None:
    pg_db.catalog.ensure_objects(WITH_DATA)
    pg_db.catalog.ensure_feature("temperature")
    for alarm_id in ALARM_IDS:
        pg_db.catalog.define_alarm(
            alarm_id=alarm_id, name=str(alarm_id), feature="temperature", operator=">", threshold=1
        )
    with pg_db.engine.begin() as connection:
        # History written straight into the table: the rules' triggers are bypassed, as only a
        # superuser can (`session_replication_role`).
        connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        type_id = connection.execute(
            sa.text("SELECT id FROM job_types WHERE name = :name"), {"name": ALARM_CALC}
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO job_instances (type_id, state_id, parameters, description, created, "
                "finished, last_state_change, queue_count) "
                "SELECT :type_id, :state, CAST(:parameters AS jsonb), 'nightly alarms', now(), "
                "now(), now(), 1 FROM generate_series(1, :rows)"
            ),
            {
                "type_id": type_id,
                "state": int(JobState.FINISHED),
                "parameters": json.dumps(raw_parameters()),
                "rows": FINISHED_ROWS,
            },
        )
    queued = [alarm_job(pg_db, WITH_DATA) for _ in range(3)]
    with pg_db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "ANALYZE job_instances"
        )

    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM job_instances" in statement and "LIMIT" in statement:
            statements.append((statement, parameters))

    engine = shared_perfdb(pg_perfdb_url).engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        result = tick(PerfDBResource(url=pg_perfdb_url))
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)

    assert result.run_keys == keys(*queued)
    assert len(statements) == 1
    statement, parameters = statements[0]
    with pg_db.engine.connect() as connection:
        plan = "\n".join(
            connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars().all()
        )
    assert STATE_INDEX in plan, plan
    assert any(
        f"{scan} using {STATE_INDEX}" in plan or f"{scan} on {STATE_INDEX}" in plan
        for scan in ("Index Scan", "Index Only Scan", "Bitmap Index Scan")
    ), plan
    assert "Seq Scan on job_instances" not in plan, plan


def test_the_description_tag_is_one_line_cut_to_a_readable_length() -> None:
    assert description_tag("") == {}
    assert description_tag("  nightly\n alarms ") == {DESCRIPTION_TAG: "nightly alarms"}
    long = description_tag("word " * 40)[DESCRIPTION_TAG]
    assert len(long) <= DESCRIPTION_TAG_LENGTH and long.endswith("word...")
