"""The run coordinator of `dagster.yaml` shortens the sensor daemon's loop.

It sets a module constant of Dagster's sensor daemon; these tests fail when an upgrade moves it.
"""

from __future__ import annotations

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
