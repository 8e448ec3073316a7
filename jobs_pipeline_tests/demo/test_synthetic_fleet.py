import math
import operator
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import cache

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.demo.synthetic_fleet import (
    AlarmSpec,
    SyntheticFleet,
    generate_fleet,
)

PERIOD = timedelta(minutes=10)
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@cache
def default_fleet() -> SyntheticFleet:
    return generate_fleet()


def reference_occurrences(
    fleet: SyntheticFleet, alarm: AlarmSpec
) -> list[tuple[str, datetime, datetime]]:
    """Evaluates ``alarm`` over the fleet sample by sample, as DESIGN.md words the semantics."""
    compare = OPERATORS[alarm.operator]
    keep = alarm.threshold if alarm.clear_threshold is None else alarm.clear_threshold
    rows = fleet.values[fleet.values["feature"] == alarm.feature]
    occurrences = []
    for object_name, group in rows.groupby("object", sort=True):
        start: datetime | None = None
        previous: datetime | None = None
        for timestamp, value in zip(
            group["timestamp"].dt.to_pydatetime(), group["value"], strict=True
        ):
            if start is not None and previous is not None and timestamp != previous + PERIOD:
                occurrences.append((object_name, start, previous + PERIOD))
                start = None
            has_data = not math.isnan(value)
            if start is not None and not (has_data and compare(value, keep)):
                occurrences.append((object_name, start, timestamp))
                start = None
            if start is None and has_data and compare(value, alarm.threshold):
                start = timestamp
            previous = timestamp
        if start is not None and previous is not None:
            occurrences.append((object_name, start, min(previous + PERIOD, fleet.end)))
    return [
        occurrence
        for occurrence in occurrences
        if occurrence[2] - occurrence[1] >= alarm.min_duration
    ]


def test_same_seed_gives_identical_fleet():
    first = generate_fleet(objects=3, days=5, seed=7)
    second = generate_fleet(objects=3, days=5, seed=7)
    pd.testing.assert_frame_equal(first.values, second.values)
    assert first.object_names == second.object_names
    assert first.features == second.features
    assert first.alarms == second.alarms
    assert (first.start, first.end) == (second.start, second.end)


def test_different_seed_gives_different_values():
    first = generate_fleet(objects=3, days=5, seed=7)
    second = generate_fleet(objects=3, days=5, seed=8)
    assert not first.values.equals(second.values)


def test_objects_do_not_depend_on_fleet_size():
    small = generate_fleet(objects=2, days=3, seed=5).values
    large = generate_fleet(objects=4, days=3, seed=5).values
    pd.testing.assert_frame_equal(small, large[large["object"].isin(["LAN-01", "LAN-02"])])


def test_frame_columns_dtypes_and_order():
    fleet = default_fleet()
    values = fleet.values
    assert list(values.columns) == ["object", "feature", "timestamp", "value"]
    assert pd.api.types.is_string_dtype(values["object"])
    assert pd.api.types.is_string_dtype(values["feature"])
    assert values["timestamp"].dtype == pd.DatetimeTZDtype("ns", UTC)
    assert values["value"].dtype == np.float64
    assert values.index.equals(pd.RangeIndex(len(values)))
    ordered = values.sort_values(["object", "feature", "timestamp"], ignore_index=True)
    pd.testing.assert_frame_equal(values, ordered)
    assert not values.duplicated(["object", "feature", "timestamp"]).any()


def test_names_features_and_alarms_match_the_frame():
    fleet = default_fleet()
    assert fleet.object_names == ["LAN-01", "LAN-02", "LAN-03", "LAN-04", "LAN-05"]
    assert sorted(fleet.values["object"].unique()) == fleet.object_names
    feature_names = [feature.name for feature in fleet.features]
    assert feature_names == sorted(feature_names)
    assert sorted(fleet.values["feature"].unique()) == feature_names
    assert {"wind_speed", "active_power", "gearbox_temperature"} <= set(feature_names)
    assert all(feature.sampling_period == PERIOD for feature in fleet.features)

    assert 3 <= len(fleet.alarms) <= 5
    assert len({alarm.alarm_id for alarm in fleet.alarms}) == len(fleet.alarms)
    assert all(alarm.feature in feature_names for alarm in fleet.alarms)
    assert all(alarm.operator in OPERATORS for alarm in fleet.alarms)
    assert any(alarm.clear_threshold is not None for alarm in fleet.alarms)
    assert any(alarm.min_duration > timedelta(0) for alarm in fleet.alarms)


def test_names_use_three_digits_beyond_99_objects():
    names = generate_fleet(objects=101, days=1).object_names
    assert names[0] == "LAN-001"
    assert names[-1] == "LAN-101"
    assert names == sorted(names)


def test_default_period_is_fixed():
    fleet = default_fleet()
    assert fleet.end == datetime(2026, 1, 1, tzinfo=UTC)
    assert fleet.start == datetime(2025, 12, 18, tzinfo=UTC)


def test_timestamps_lie_on_the_grid_inside_the_period():
    fleet = default_fleet()
    timestamps = fleet.values["timestamp"]
    assert timestamps.min() >= fleet.start
    assert timestamps.max() < fleet.end
    assert ((timestamps - fleet.start) % PERIOD == timedelta(0)).all()


@pytest.mark.parametrize(
    "end",
    [
        datetime(2025, 7, 1, 12, 30, tzinfo=UTC),
        datetime(2025, 7, 1, 12, 30),
        datetime(2025, 7, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_end_is_read_as_utc(end):
    fleet = generate_fleet(objects=1, days=2, end=end)
    assert fleet.end == datetime(2025, 7, 1, 12, 30, tzinfo=UTC)
    assert fleet.end.utcoffset() == timedelta(0)
    assert fleet.start == datetime(2025, 6, 29, 12, 30, tzinfo=UTC)
    assert fleet.values["timestamp"].max() < fleet.end


def test_outages_remove_all_features_of_an_object():
    values = default_fleet().values
    expected_samples = 14 * 144
    counts = values.groupby(["object", "feature"])["timestamp"].count()
    assert (counts <= expected_samples).all()
    assert (counts < expected_samples).any()
    for _, group in values.groupby("object"):
        per_feature = [
            frame["timestamp"].reset_index(drop=True) for _, frame in group.groupby("feature")
        ]
        for timestamps in per_feature[1:]:
            pd.testing.assert_series_equal(timestamps, per_feature[0])


def test_every_feature_has_scattered_nan():
    values = default_fleet().values
    nan_share = values["value"].isna().groupby(values["feature"]).mean()
    assert (nan_share > 0).all()
    assert (nan_share < 0.02).all()


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"objects": 0}, "objects"),
        ({"objects": 1000}, "objects"),
        ({"objects": True}, "objects"),
        ({"objects": 2.0}, "objects"),
        ({"days": 0}, "days"),
        ({"days": 3661}, "days"),
        ({"days": "3"}, "days"),
        ({"seed": -1}, "seed"),
        ({"end": datetime(2026, 1, 1, 0, 5, tzinfo=UTC)}, "end"),
        ({"end": "2026-01-01"}, "end"),
    ],
)
def test_invalid_arguments_are_rejected(arguments, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        generate_fleet(**arguments)


@pytest.mark.parametrize("alarm", default_fleet().alarms, ids=lambda alarm: str(alarm.alarm_id))
def test_alarm_fires_but_not_constantly(alarm):
    fleet = default_fleet()
    occurrences = reference_occurrences(fleet, alarm)
    assert occurrences
    active = sum((end - start for _, start, end in occurrences), timedelta(0))
    assert active <= 0.2 * (fleet.end - fleet.start) * len(fleet.object_names)


def test_over_temperature_dips_make_hysteresis_matter():
    fleet = default_fleet()
    (alarm,) = [alarm for alarm in fleet.alarms if alarm.clear_threshold is not None]
    with_hysteresis = reference_occurrences(fleet, alarm)
    without_hysteresis = reference_occurrences(fleet, replace(alarm, clear_threshold=None))
    assert len(without_hysteresis) > len(with_hysteresis)


def test_no_output_occurs_while_the_wind_blows():
    fleet = default_fleet()
    (alarm,) = [alarm for alarm in fleet.alarms if alarm.feature == "active_power"]
    wind = fleet.values[fleet.values["feature"] == "wind_speed"]
    for object_name, start, end in reference_occurrences(fleet, alarm):
        during = wind[
            (wind["object"] == object_name)
            & (wind["timestamp"] >= start)
            & (wind["timestamp"] < end)
        ]
        assert during["value"].mean() > 5.0


def test_every_alarm_fires_in_the_smallest_fleet():
    fleet = generate_fleet(objects=1, days=1, seed=11)
    for alarm in fleet.alarms:
        assert reference_occurrences(fleet, alarm), alarm.name
