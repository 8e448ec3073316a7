"""Derived feature definitions in the database: checked when written, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.derived_features import DerivedFeatureCycle, replace_values
from jobs_pipeline.perfdb.engine import begin
from jobs_pipeline.perfdb.errors import InputError, NotFound


@pytest.fixture
def measured(perfdb: PerfDB) -> PerfDB:
    perfdb.catalog.ensure_feature("dc_voltage", unit="V", sampling_period=timedelta(minutes=5))
    perfdb.catalog.ensure_feature("dc_current", unit="A", sampling_period=timedelta(minutes=5))
    perfdb.catalog.ensure_feature("ac_power", unit="kW")
    return perfdb


def test_a_definition_creates_the_feature_with_its_inputs(measured: PerfDB) -> None:
    defined = measured.derived.define("dc_power", "dc_voltage * dc_current / 1000", unit="kW")
    assert defined.expression == "dc_voltage * dc_current / 1000"
    assert [feature.name for feature in defined.inputs] == ["dc_voltage", "dc_current"]
    assert (defined.feature.unit, defined.feature.sampling_period) == ("kW", timedelta(minutes=5))
    assert measured.catalog.get_feature("dc_power") == defined.feature
    efficiency = measured.derived.define(
        "efficiency", "ac_power / dc_power", sampling_period=timedelta(minutes=10)
    )
    assert [feature.name for feature in efficiency.inputs] == ["ac_power", "dc_power"]
    assert [item.feature.name for item in measured.derived.list()] == ["dc_power", "efficiency"]
    assert measured.derived.by_names(["efficiency"])["efficiency"] == efficiency


def test_a_redefinition_replaces_expression_and_keeps_what_is_not_given(measured: PerfDB) -> None:
    measured.derived.define("dc_power", "dc_voltage * dc_current", unit="W")
    again = measured.derived.define("dc_power", "dc_voltage * dc_current / 1000 + 0 * ac_power")
    assert again.feature.unit == "W"
    assert [feature.name for feature in again.inputs] == ["dc_voltage", "dc_current", "ac_power"]
    assert measured.derived.get("dc_power") == again


@pytest.mark.parametrize(
    ("name", "expression", "error", "naming"),
    [
        ("dc_power", "dc_voltage * nothing", NotFound, "unknown feature 'nothing'"),
        ("dc_power", "2 * 3", InputError, "names no feature"),
        ("dc_power", "dc_voltage.real", InputError, "attribute access"),
        ("dc_power", "dc_power * 2", DerivedFeatureCycle, "dc_power -> dc_power"),
        ("ac_power", "dc_voltage * 2", InputError, "holds measured values"),
    ],
)
def test_bad_definitions_are_refused_and_write_nothing(
    measured: PerfDB, name: str, expression: str, error: type[Exception], naming: str
) -> None:
    measured.values.import_frame(
        pd.DataFrame(
            {"object": ["INV-01"], "feature": ["ac_power"], "timestamp": ["2024-01-01"],
             "value": [1.0]}
        )
    )  # fmt: skip
    features_before = measured.catalog.list_features()
    with pytest.raises(error, match=None) as refused:
        measured.derived.define(name, expression)
    assert naming in str(refused.value)
    assert measured.catalog.list_features() == features_before
    assert measured.derived.list() == []


def test_a_cycle_through_several_definitions_is_refused_with_its_path(measured: PerfDB) -> None:
    measured.derived.define("a", "dc_voltage + 1")
    measured.derived.define("b", "a * 2")
    measured.derived.define("c", "b + ac_power")
    with pytest.raises(DerivedFeatureCycle, match="cycle of derived features: a -> c -> b -> a"):
        measured.derived.define("a", "c - 1")
    assert measured.derived.get("a").expression == "dc_voltage + 1"


def test_replace_values_replaces_the_period_only(measured: PerfDB) -> None:
    defined = measured.derived.define("dc_power", "dc_voltage * dc_current")
    object_id = measured.catalog.ensure_objects(["INV-01"])["INV-01"]
    stamps = pd.date_range("2024-01-01", periods=6, freq="5min", tz="UTC")
    first = pd.Series([1.0, 2.0, np.nan, 4.0, 5.0, 6.0], index=stamps)
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    with begin(measured.engine) as connection:
        assert replace_values(
            connection, object_id=object_id, feature_id=defined.feature.id,
            start=start, end=end, values=first,
        ) == 6  # fmt: skip
    # A recalculation of the first 15 minutes: their old rows go, the rest stays.
    second = pd.Series([10.0], index=stamps[1:2])
    with begin(measured.engine) as connection:
        replace_values(
            connection, object_id=object_id, feature_id=defined.feature.id,
            start=stamps[0].to_pydatetime(), end=stamps[3].to_pydatetime(), values=second,
        )  # fmt: skip
    stored = measured.values.read(object_id, defined.feature.id, start, end)
    pd.testing.assert_series_equal(
        stored, pd.Series([10.0, 4.0, 5.0, 6.0], index=stamps[[1, 3, 4, 5]].as_unit("us")),
        check_freq=False,
    )  # fmt: skip
