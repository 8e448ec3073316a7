"""The run coordinator of `dagster.yaml` shortens the sensor daemon's loop.

It sets a module constant of Dagster's sensor daemon; these tests fail when an upgrade moves it.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._daemon import sensor as sensor_daemon

from jobs_pipeline.orchestration.run_coordinator import (
    DAGSTER_SENSOR_LOOP_SECONDS,
    QueueRunCoordinator,
    SensorLoopNotAdjusted,
    set_sensor_loop_seconds,
)
from jobs_pipeline.settings import LOG_LEVEL, PROJECT_ROOT


@pytest.fixture(autouse=True)
def restore_sensor_loop() -> Iterator[None]:
    before = sensor_daemon.MIN_INTERVAL_LOOP_TIME
    yield
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = before  # type: ignore[attr-defined]


def test_dagster_still_has_the_sensor_loop_constant_with_its_default() -> None:
    # In a fresh interpreter: other tests of this process may have loaded the config already.
    probe = "import dagster._daemon.sensor as s; print(repr(s.MIN_INTERVAL_LOOP_TIME))"
    printed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == str(DAGSTER_SENSOR_LOOP_SECONDS)


def test_the_repository_instance_config_loads_it_with_a_one_second_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = DAGSTER_SENSOR_LOOP_SECONDS

    instance = dg.DagsterInstance.get()
    try:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueueRunCoordinator)
        assert coordinator.sensor_loop_seconds == 1
        # Runs are launched by a pool of threads, as many as runs may be in flight.
        assert coordinator.dequeue_use_threads
        assert coordinator.dequeue_num_workers == 4
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4
        assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == 1
    finally:
        instance.dispose()


def test_a_loop_shorter_than_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        set_sensor_loop_seconds(0)


def test_without_the_setting_dagsters_loop_is_kept() -> None:
    sensor_daemon.MIN_INTERVAL_LOOP_TIME = 3
    QueueRunCoordinator(max_concurrent_runs=1)
    assert sensor_daemon.MIN_INTERVAL_LOOP_TIME == DAGSTER_SENSOR_LOOP_SECONDS


def test_a_dagster_without_the_constant_gets_a_warning_and_its_own_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fails open: a Dagster upgrade that drops the constant must not stop the daemon,
    # the webserver or the CLI, all of which build the run coordinator from dagster.yaml.
    monkeypatch.delattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME")
    with pytest.warns(SensorLoopNotAdjusted, match="keeps Dagster's own loop"):
        coordinator = QueueRunCoordinator(max_concurrent_runs=2, sensor_loop_seconds=1)
    assert coordinator.get_run_queue_config().max_concurrent_runs == 2
    assert not hasattr(sensor_daemon, "MIN_INTERVAL_LOOP_TIME")


def test_routine_ticks_of_our_sensors_are_dropped_from_the_daemon_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from jobs_pipeline.orchestration import quiet_logs

    monkeypatch.delenv(LOG_LEVEL.name, raising=False)
    logger = logging.getLogger(quiet_logs.SENSOR_DAEMON_LOGGER)
    monkeypatch.setattr(logger, "filters", [])
    QueueRunCoordinator(max_concurrent_runs=1)
    with caplog.at_level(logging.INFO, logger=quiet_logs.SENSOR_DAEMON_LOGGER):
        logger.info("Checking for new runs for sensor: perfdb_queue_sensor")
        logger.info("Sensor perfdb_reconciler skipped: nothing to reconcile")
        logger.info("Checking for new runs for sensor: someone_elses_sensor")
        logger.info(
            'Skipping 2 runs for sensor perfdb_queue_sensor already completed with run keys: ["a"]'
        )
        # Dagster logs every skip reason at INFO, this one too: it must stay visible.
        logger.info("Sensor perfdb_queue_sensor skipped: performance database unreachable: x")
        logger.info("Sensor perfdb_reconciler skipped: performance database unreachable: y")
        logger.warning("Sensor perfdb_queue_sensor skipped: could not read the runs")
    assert [record.getMessage() for record in caplog.records] == [
        "Checking for new runs for sensor: someone_elses_sensor",
        "Sensor perfdb_queue_sensor skipped: performance database unreachable: x",
        "Sensor perfdb_reconciler skipped: performance database unreachable: y",
        "Sensor perfdb_queue_sensor skipped: could not read the runs",
    ]


def test_the_daemon_still_words_its_routine_tick_lines_as_the_filter_expects() -> None:
    # Tripwire: if Dagster rewords these lines, they show up in the log again (no harm done,
    # but the filter in quiet_logs.py needs the new wording).
    source = Path(sensor_daemon.__file__).read_text()
    assert 'f"Checking for new runs for sensor: {remote_sensor.name}"' in source
    assert 'f"Sensor {remote_sensor.name} skipped: {sensor_runtime_data.skip_message}"' in source
    assert 'f"{remote_sensor.name} already completed with run keys: ' in source


# --- re-executions are not labelled as the queue sensor's runs ----------------------------------


@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_a_reexecution_keeps_the_job_tags_but_not_the_sensor_tag(
    storage: str, tmp_path: Path
) -> None:
    from dagster._core.run_coordinator import SubmitRunContext

    from jobs_pipeline.orchestration.tags import JOB_ID_TAG, SENSOR_NAME_TAG
    from jobs_pipeline_tests.orchestration.processes import (
        dagster_environment,
        instance_for_environment,
        make_dagster_home,
        scratch_pg_database,
    )

    with contextlib.ExitStack() as stack:
        pg_url = stack.enter_context(scratch_pg_database()) if storage == "postgresql" else None
        env = dagster_environment(make_dagster_home(tmp_path / "home"), "sqlite://", pg_url)
        instance = stack.enter_context(instance_for_environment(env))
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueueRunCoordinator)
        tags = {JOB_ID_TAG: "7", SENSOR_NAME_TAG: "perfdb_queue_sensor"}
        parent = queued_run(instance, tags)
        child = queued_run(instance, tags, parent_run_id=parent.run_id)

        # Dagster's coordinator reads nothing of the workspace when it queues a run.
        submitted = coordinator.submit_run(SubmitRunContext(child, workspace=None))  # type: ignore[arg-type]

        assert submitted.tags.get(SENSOR_NAME_TAG) is None
        assert submitted.tags[JOB_ID_TAG] == "7"
        assert submitted.status == dg.DagsterRunStatus.QUEUED
        by_sensor = instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: "perfdb_queue_sensor"}))
        assert [run.run_id for run in by_sensor] == [parent.run_id]
        # A run without a parent (the sensor's) keeps it.
        coordinator.submit_run(SubmitRunContext(parent, workspace=None))  # type: ignore[arg-type]
        kept = instance.get_run_by_id(parent.run_id)
        assert kept is not None and kept.tags[SENSOR_NAME_TAG] == "perfdb_queue_sensor"


def queued_run(
    instance: dg.DagsterInstance, tags: dict[str, str], parent_run_id: str | None = None
) -> dg.DagsterRun:
    """A run as the UI or the sensor creates it before the coordinator queues it: it names the
    code location it comes from (never contacted here: the run is only queued)."""
    from dagster._core.remote_origin import (
        GrpcServerCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )

    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=GrpcServerCodeLocationOrigin(
                host="localhost", port=4266, location_name="jobs_pipeline"
            ),
            repository_name="__repository__",
        ),
        job_name="perfdb_job",
    )
    return instance.add_run(
        dg.DagsterRun(
            job_name="perfdb_job",
            tags=tags,
            parent_run_id=parent_run_id,
            root_run_id=parent_run_id,
            remote_job_origin=origin,
        )
    )
