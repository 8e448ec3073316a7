"""`JobFeatureCalc` through the job path without Dagster: steps and their dependencies, derived
values exact against a computation by hand, replaced on recalculation, failure propagation to
dependents and a requeue that runs exactly the failed chain. Both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.jobs import JobFeatureCalc, create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import NotFound
from jobs_pipeline.perfdb.states import JobState

FEATURE_CALC = "Feature Calculation"
START, END = "2024-01-01 00:00:00", "2024-01-01 02:00:00"
STAMPS = pd.date_range("2024-01-01", periods=12, freq="10min", tz="UTC")
RNG = np.random.default_rng(3)
VOLTAGE = {name: RNG.uniform(550, 650, 12) for name in ("INV-01", "INV-02")}
CURRENT = {name: RNG.uniform(0, 12, 12) for name in ("INV-01", "INV-02")}
AC = {name: RNG.uniform(0, 7, 12) for name in ("INV-01", "INV-02")}


def frame(obj: str, feature: str, values: np.ndarray, stamps: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"object": obj, "feature": feature, "timestamp": stamps, "value": values})


@pytest.fixture
def plant(perfdb: PerfDB) -> PerfDB:
    """Two inverters; INV-02's current is jittered by 30 s. INV-03 has no DC voltage in the
    period (its dc_power step fails). Derived: dc_power, efficiency (reads dc_power)."""
    parts = []
    for name in ("INV-01", "INV-02"):
        jitter = pd.Timedelta(seconds=30 if name == "INV-02" else 0)
        parts += [
            frame(name, "dc_voltage", VOLTAGE[name], STAMPS),
            frame(name, "dc_current", CURRENT[name], STAMPS + jitter),
            frame(name, "ac_power", AC[name], STAMPS),
        ]
    parts.append(frame("INV-03", "dc_voltage", np.array([600.0]), STAMPS[:1] - pd.Timedelta("1D")))
    parts.append(frame("INV-03", "ac_power", AC["INV-01"], STAMPS))
    perfdb.values.import_frame(pd.concat(parts, ignore_index=True))
    perfdb.derived.define("dc_power", "dc_voltage * dc_current / 1000", unit="kW")
    perfdb.derived.define("efficiency", "where(dc_power > 0.5, ac_power / dc_power, 0)")
    return perfdb


def stored(perfdb: PerfDB, obj: str, feature: str) -> pd.Series:
    object_id = perfdb.catalog.object_ids([obj])[obj]
    feature_id = perfdb.catalog.get_feature(feature).id
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    return perfdb.values.read(object_id, feature_id, start, end)


def params(objects: list[str], features: list[str]) -> dict[str, object]:
    return {"object_names": objects, "feature_names": features, "start": START, "end": END}


def test_chained_features_are_exact_and_depend_on_their_inputs_step(plant: PerfDB) -> None:
    # Listed in the "wrong" order: the job computes dc_power first anyway.
    job = create_job(plant, FEATURE_CALC, params(["INV-01", "INV-02"], ["efficiency", "dc_power"]))
    calc = JobFeatureCalc(job.id, perfdb=plant)
    steps = list(calc.steps.values())
    by_key = {(step.object_name, step.feature_name): step for step in steps}
    assert [(step.object_name, step.feature_name) for step in steps] == [
        ("INV-01", "dc_power"), ("INV-02", "dc_power"),
        ("INV-01", "efficiency"), ("INV-02", "efficiency"),
    ]  # fmt: skip
    assert by_key[("INV-02", "efficiency")].depends_on == (by_key[("INV-02", "dc_power")].id,)
    assert by_key[("INV-01", "dc_power")].depends_on == ()

    assert calc.run() == []
    assert plant.queue.get_job(job.id).state == JobState.FINISHED
    for name in ("INV-01", "INV-02"):
        dc_power = VOLTAGE[name] * CURRENT[name] / 1000  # the jitter is within half a period
        efficiency = np.where(dc_power > 0.5, AC[name] / dc_power, 0.0)
        np.testing.assert_array_equal(stored(plant, name, "dc_power").to_numpy(), dc_power)
        np.testing.assert_array_equal(stored(plant, name, "efficiency").to_numpy(), efficiency)
        assert list(stored(plant, name, "efficiency").index) == list(STAMPS)
    details = plant.queue.get_step(by_key[("INV-01", "efficiency")].id).details or {}
    assert (details["samples_read"], details["coverage_percent"]) == (12, 100.0)


def test_a_recalculation_replaces_the_values(plant: PerfDB) -> None:
    job = create_job(plant, FEATURE_CALC, params(["INV-01"], ["dc_power"]))
    JobFeatureCalc(job.id, perfdb=plant).run()
    plant.derived.define("dc_power", "dc_voltage * dc_current")  # now in W
    plant.queue.queue_job(job.id)
    JobFeatureCalc(job.id, perfdb=plant).run()
    np.testing.assert_array_equal(
        stored(plant, "INV-01", "dc_power").to_numpy(), VOLTAGE["INV-01"] * CURRENT["INV-01"]
    )


def test_a_failed_step_fails_its_dependents_and_a_requeue_runs_exactly_that_chain(
    plant: PerfDB,
) -> None:
    job = create_job(plant, FEATURE_CALC, params(["INV-01", "INV-03"], ["dc_power", "efficiency"]))
    calc = JobFeatureCalc(job.id, perfdb=plant)
    by_key = {(step.object_name, step.feature_name): step for step in calc.steps.values()}
    failed_step, dependent = by_key[("INV-03", "dc_power")], by_key[("INV-03", "efficiency")]
    assert sorted(calc.run()) == sorted([failed_step.id, dependent.id])

    steps = {step.id: step for step in plant.queue.get_steps(job.id)}
    assert steps[failed_step.id].comment.startswith("no data for 'dc_power' of object 'INV-03'")
    assert steps[dependent.id].comment == (
        f"not run: depends on step {failed_step.id} (INV-03 dc_power), which failed"
    )
    assert (steps[dependent.id].attempts, steps[dependent.id].started) == (0, None)
    assert steps[by_key[("INV-01", "efficiency")].id].state == JobState.FINISHED
    job_now = plant.queue.get_job(job.id)
    assert (job_now.state, job_now.comment) == (JobState.FAILED, "2 (50.00%) steps failed")

    # The data arrive; a requeue runs the failed step, then its dependent, and nothing else.
    plant.values.import_frame(frame("INV-03", "dc_voltage", VOLTAGE["INV-01"], STAMPS))
    plant.values.import_frame(frame("INV-03", "dc_current", CURRENT["INV-01"], STAMPS))
    plant.queue.queue_job(job.id)
    assert JobFeatureCalc(job.id, perfdb=plant).run() == []
    after = {step.id: step for step in plant.queue.get_steps(job.id)}
    ran_again = {step_id for step_id in after if after[step_id].attempts != steps[step_id].attempts}
    assert ran_again == {failed_step.id, dependent.id}
    assert after[dependent.id].attempts == 1
    assert plant.queue.get_job(job.id).state == JobState.FINISHED


def test_parameters_must_name_derived_features_and_known_objects(plant: PerfDB) -> None:
    with pytest.raises(NotFound, match="not derived features: 'ac_power'"):
        create_job(plant, FEATURE_CALC, params(["INV-01"], ["ac_power"]))
    with pytest.raises(NotFound, match="unknown object names: 'INV-09'"):
        create_job(plant, FEATURE_CALC, params(["INV-09"], ["dc_power"]))
