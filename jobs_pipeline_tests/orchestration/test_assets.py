"""Features and alarm occurrences as Dagster assets, on SQLite and PostgreSQL: the specs and their
lineage read from the catalog (none, with a warning, from a database that is missing, empty or
unreachable), and one materialization per step that wrote, with its metadata, in real runs of a
Feature Calculation job and an alarm job."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from jobs_pipeline.jobs import JobDataImport, create_job
from jobs_pipeline.orchestration.assets import (
    IMPORTS_KEY,
    alarm_asset_key,
    feature_asset_key,
    load_asset_specs,
    run_materializations,
)
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.settings import PERFDB_URL
from jobs_pipeline_tests.jobs.data_import_files import DATA_IMPORT, good_and_bad_files
from jobs_pipeline_tests.orchestration.feature_job_runs import (
    feature_job,
    in_process_job,
    run,
)
from jobs_pipeline_tests.power_chain import seed_power_chain

ALARM = 3001


def define_alarm(perfdb: PerfDB) -> None:
    perfdb.catalog.define_alarm(
        alarm_id=ALARM, name="Power doubled high", feature="doubled", operator=">", threshold=100
    )


def test_the_catalog_gives_one_asset_per_feature_and_alarm_with_lineage(
    perfdb: PerfDB, perfdb_url: str
) -> None:
    seed_power_chain(perfdb, ["A", "B", "C"], 10)
    perfdb.derived.define("squared", "voltage ** 2 + voltage")  # one input named twice
    define_alarm(perfdb)

    specs = {spec.key: spec for spec in load_asset_specs(perfdb_url)}

    voltage, current = feature_asset_key("voltage"), feature_asset_key("current")
    power, doubled = feature_asset_key("power"), feature_asset_key("doubled")
    squared, alarm = feature_asset_key("squared"), alarm_asset_key(ALARM)
    # Objects are no part of the keys: three objects, one asset per feature and alarm.
    assert set(specs) == {IMPORTS_KEY, voltage, current, power, doubled, squared, alarm}
    assert alarm == dg.AssetKey(["alarm_occurrences", f"alarm_{ALARM}"])
    assert power == dg.AssetKey(["features", "power"])
    lineage = {key: {dep.asset_key for dep in spec.deps} for key, spec in specs.items()}
    assert lineage == {
        IMPORTS_KEY: set(),
        voltage: {IMPORTS_KEY},
        current: {IMPORTS_KEY},
        power: {voltage, current},
        doubled: {power},
        squared: {voltage},
        alarm: {doubled},
    }
    groups = {key: spec.group_name for key, spec in specs.items()}
    assert (groups[voltage], groups[power], groups[alarm]) == (
        "measured_features",
        "derived_features",
        "alarm_occurrences",
    )
    assert specs[power].metadata["expression"] == "voltage * current"
    assert specs[alarm].description == f"Occurrences of alarm {ALARM} Power doubled high: " + (
        "doubled > 100"
    )
    # Dagster takes them as a code location's assets, lineage resolved.
    graph = dg.Definitions(assets=list(specs.values())).resolve_asset_graph()
    assert graph.get(alarm).parent_keys == {doubled}
    assert graph.get(doubled).parent_keys == {power}


def test_names_that_are_not_dagster_safe_get_distinct_safe_keys() -> None:
    spaced, dashed = feature_asset_key("wind speed"), feature_asset_key("wind-speed")
    assert spaced != dashed
    for key in (spaced, dashed):
        assert key.path[1].startswith("wind_speed_")
        assert key.path[1].replace("_", "").isalnum()


@pytest.mark.parametrize("empty_perfdb_url", ["sqlite", "postgresql"], indirect=True)
def test_a_database_without_schema_gives_no_assets_and_a_warning(
    empty_perfdb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_file = make_url(empty_perfdb_url).database
    if empty_perfdb_url.startswith("sqlite"):
        Path(sqlite_file or "").touch()  # an empty file is an empty SQLite database
    with caplog.at_level(logging.WARNING):
        assert load_asset_specs(empty_perfdb_url) == []
    assert "has no schema: no assets" in caplog.text


@pytest.mark.parametrize(
    "url",
    ["postgresql://root@127.0.0.1:1/nothing_here", "sqlite:////nonexistent/folder/perfdb.sqlite"],
    ids=["unreachable", "missing"],
)
def test_an_unreachable_or_missing_database_gives_no_assets_and_a_warning(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert load_asset_specs(url) == []
    assert "no assets" in caplog.text


def materializations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetMaterialization]:
    return [
        entry.asset_materialization
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        if entry.asset_materialization is not None
    ]


def metadata_of(materialization: dg.AssetMaterialization) -> dict[str, object]:
    return {name: value.value for name, value in materialization.metadata.items()}


@pytest.mark.usefixtures("perfdb_resource")
def test_a_run_reports_one_materialization_per_asset_its_steps_wrote(
    perfdb: PerfDB,
    perfdb_url: str,
    dagster_instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PERFDB_URL.name, perfdb_url)
    period = seed_power_chain(perfdb, ["A", "B", "C"], 30, without_data="C")
    define_alarm(perfdb)
    job_id = feature_job(perfdb, ["A", "B", "C"], period)

    result = run(in_process_job(), job_id, perfdb_url, dagster_instance)

    assert not result.success  # C has no data: its power step fails, its doubled step not run
    steps = perfdb.queue.get_steps(job_id)
    finished = [step for step in steps if step.state == JobState.FINISHED]
    assert sorted((step.object_name, step.feature_name) for step in finished) == [
        ("A", "doubled"),
        ("A", "power"),
        ("B", "doubled"),
        ("B", "power"),
    ]
    stamps = pd.date_range("2024-01-01", periods=30, freq="1min", tz="UTC")
    for step in finished:  # what each step wrote, in its details
        values = perfdb.values.read(
            step.object_key, step.feature_id, stamps[0], stamps[-1] + pd.Timedelta("1min")
        )
        assert (step.details or {})["wrote"] == {
            "feature": step.feature_name,
            "object": step.object_name,
            "start": "2024-01-01T00:00:00+00:00",
            "end": "2024-01-01T00:30:00+00:00",
            "rows": len(values),
        }
    # The failed run reports its writes once per asset (the failed steps wrote nothing).
    reported = materializations(dagster_instance, result.run_id)
    assert {item.asset_key: metadata_of(item) for item in reported} == {
        feature_asset_key(name): {
            "job_id": job_id,
            "steps": 2,
            "objects": "A, B",
            "object_count": 2,
            "feature": name,
            "period": "[2024-01-01T00:00:00+00:00, 2024-01-01T00:30:00+00:00)",
            "rows": 60,
        }
        for name in ("power", "doubled")
    }
    # The asset's page: its latest materialization is this run's.
    latest = dagster_instance.get_latest_materialization_event(feature_asset_key("doubled"))
    assert latest is not None and latest.run_id == result.run_id

    # Data for C, and "Re-execute from failure": only C's two steps, so rows of C only.
    seed_object(perfdb, "C", period)
    again = dg.execute_job(
        dg.reconstructable(in_process_job),
        instance=dagster_instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(result.run_id, dagster_instance),
    )
    assert again.success
    reported = materializations(dagster_instance, again.run_id)
    assert sorted(
        (item.asset_key, metadata_of(item)["objects"], metadata_of(item)["rows"])
        for item in reported
    ) == sorted((feature_asset_key(name), "C", 30) for name in ("power", "doubled"))

    alarm_job = create_job(
        perfdb,
        "Alarm Calculation",
        {"object_names": ["A", "B"], "alarm_ids": [ALARM], **period},
        queue=True,
    )
    alarm_run = run(in_process_job(), alarm_job.id, perfdb_url, dagster_instance)

    assert alarm_run.success
    occurrences = perfdb.occurrences.list(alarm_id=ALARM)
    assert occurrences  # uniform(1, 10) squared and doubled passes 100
    [reported_alarm] = materializations(dagster_instance, alarm_run.run_id)
    assert reported_alarm.asset_key == alarm_asset_key(ALARM)
    assert metadata_of(reported_alarm) == {
        "job_id": alarm_job.id,
        "steps": 2,
        "objects": "A, B",
        "object_count": 2,
        "alarm_id": ALARM,
        "period": "[2024-01-01T00:00:00+00:00, 2024-01-01T00:30:00+00:00)",
        "rows": len(occurrences),
    }


def seed_object(perfdb: PerfDB, name: str, period: dict[str, str]) -> None:
    stamps = pd.date_range(period["start"], periods=30, freq="1min", tz="UTC")
    perfdb.values.import_frame(
        pd.concat(
            pd.DataFrame({"object": name, "feature": feature, "timestamp": stamps, "value": 5.0})
            for feature in ("voltage", "current")
        ),
        sampling_period=pd.Timedelta("1min"),
    )


def test_a_data_import_reports_its_files_on_the_imports_asset(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    good, bad = good_and_bad_files(tmp_path)
    job = create_job(perfdb, DATA_IMPORT, {"paths": [good, bad]})
    runner = JobDataImport(job.id, perfdb=perfdb)
    runner.run()
    run_id = runner.job.run_id or ""

    [reported] = run_materializations(perfdb, job.id, run_id)

    assert reported.asset_key == IMPORTS_KEY
    assert metadata_of(reported) == {"job_id": job.id, "steps": 1, "files": good, "rows": 6}
    assert run_materializations(perfdb, job.id, "another-run") == []
