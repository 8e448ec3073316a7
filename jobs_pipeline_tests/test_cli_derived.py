"""`features derive`, `features values` and the step fields of `job show`: outputs, `--json`,
exit codes, and bad input that exits 2 with one line naming the problem and writes nothing."""

from __future__ import annotations

import pandas as pd
import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline_tests.cli_runner import Cli


@pytest.fixture
def inverter(perfdb: PerfDB) -> PerfDB:
    stamps = ["2024-01-01T00:00:00Z", "2024-01-01T00:10:00Z", "2024-01-01T00:20:00Z"]
    frame = pd.DataFrame(
        {
            "object": ["INV-01"] * 6,
            "feature": ["dc_voltage"] * 3 + ["dc_current"] * 3,
            "timestamp": stamps * 2,
            "value": [600.0, None, 620.0, 10.0, 11.0, 12.5],
        }
    )
    perfdb.values.import_frame(frame)
    return perfdb


def test_features_derive_defines_and_refuses_with_exit_2(cli: Cli, inverter: PerfDB) -> None:
    out = cli.ok(
        "features", "derive", "dc_power", "--expression", "dc_voltage * dc_current / 1000",
        "--unit", "kW", "--sampling-period", "600",
    ).out  # fmt: skip
    assert out == (
        "derived feature 'dc_power' [kW] = dc_voltage * dc_current / 1000 (sampling period 600 s)\n"
    )
    assert inverter.derived.get("dc_power").feature.unit == "kW"
    cli.rejects("features", "derive", "x", "--expression", "1 + 2", naming="names no feature")
    cli.rejects(
        "features", "derive", "x", "--expression", "dc_voltage * nope",
        naming="unknown feature 'nope'",
    )  # fmt: skip
    cli.rejects(
        "features", "derive", "dc_voltage2", "--expression", "__import__('os')",
        naming="names may not start with '_'",
    )  # fmt: skip
    cli.ok("features", "derive", "twice", "--expression", "dc_power * 2")
    cli.rejects(
        "features", "derive", "dc_power", "--expression", "twice / 2",
        naming="cycle of derived features: dc_power -> twice -> dc_power",
    )  # fmt: skip
    cli.rejects(
        "features", "derive", "dc_voltage", "--expression", "dc_current",
        naming="holds measured values",
    )  # fmt: skip
    cli.rejects("features", "derive", "x", naming="--expression")
    assert [item.feature.name for item in inverter.derived.list()] == ["dc_power", "twice"]
    assert inverter.derived.get("dc_power").expression == "dc_voltage * dc_current / 1000"


def test_features_values_as_table_json_and_csv(cli: Cli, inverter: PerfDB) -> None:
    shown = cli.ok("features", "values", "--object", "INV-01", "--feature", "dc_voltage", "--json")
    assert shown.json == [
        {"timestamp": "2024-01-01T00:00:00+00:00", "value": 600.0},
        {"timestamp": "2024-01-01T00:10:00+00:00", "value": None},
        {"timestamp": "2024-01-01T00:20:00+00:00", "value": 620.0},
    ]
    csv = cli.ok(
        "features", "values", "--object", "INV-01", "--feature", "dc_current", "--csv",
        "--start", "2024-01-01 00:10:00", "--end", "2024-01-01T00:20:00Z",
    ).out  # fmt: skip
    assert csv == "timestamp,value\n2024-01-01T00:10:00+00:00,11.0\n"
    table = cli.ok("features", "values", "--object", "INV-01", "--feature", "dc_current").out
    assert table.splitlines()[1].split() == ["2024-01-01", "00:00:00", "10"]
    cli.rejects(
        "features", "values", "--object", "INV-09", "--feature", "dc_current",
        naming="unknown object names: 'INV-09'",
    )  # fmt: skip
    cli.rejects(
        "features", "values", "--object", "INV-01", "--feature", "nope",
        naming="unknown feature 'nope'",
    )  # fmt: skip
    cli.rejects(
        "features", "values", "--object", "INV-01", "--feature", "dc_current",
        "--start", "2024-02-01", "--end", "2024-01-01", naming="must be before --end",
    )  # fmt: skip
    cli.rejects(
        "features", "values", "--object", "INV-01", "--feature", "dc_current", "--json", "--csv",
        naming="not allowed with argument",
    )  # fmt: skip


def test_job_show_gives_feature_times_dependencies_and_data_quality(
    cli: Cli, inverter: PerfDB
) -> None:
    from jobs_pipeline.jobs import create_job

    inverter.catalog.define_alarm(
        alarm_id=7, name="Low voltage", feature="dc_voltage", operator="<", threshold=100.0
    )
    params = {
        "object_names": ["INV-01"], "alarm_ids": [7],
        "start": "2024-01-01 00:00:00", "end": "2024-01-01 00:30:00",
    }  # fmt: skip
    job = create_job(inverter, "Alarm Calculation", params)
    inverter.queue.claim_job(job.id, "run-1", from_states=(job.state,))
    object_id = inverter.catalog.object_ids(["INV-01"])["INV-01"]
    voltage = inverter.catalog.get_feature("dc_voltage")
    first, second = inverter.queue.create_steps(
        job.id,
        [
            NewStep(object_id=object_id, alarm_id=7, feature_id=voltage.id),
            NewStep(object_id=object_id, feature_id=voltage.id, depends_on=(0,)),
        ],
    )
    inverter.queue.start_step(first.id, "run-1")
    details = {"samples_read": 3, "nan_samples": 1, "gaps": 1, "gap_seconds": 600.0,
               "coverage_percent": 66.66}  # fmt: skip
    inverter.queue.finish_step(first.id, run_id="run-1", details=details)

    steps = cli.ok("job", "show", str(job.id), "--json").json["steps"]
    assert [
        {key: step[key] for key in ("id", "feature", "depends_on", "details")} for step in steps
    ] == [
        {"id": first.id, "feature": "dc_voltage", "depends_on": [], "details": details},
        {"id": second.id, "feature": "dc_voltage", "depends_on": [first.id], "details": None},
    ]
    assert steps[0]["started"] <= steps[0]["finished"]
    assert (steps[1]["started"], steps[1]["finished"]) == (None, None)
    text = cli.ok("job", "show", str(job.id)).out
    assert "66.66 %, 3 samples (1 NaN), 1 gap 10 min" in text
