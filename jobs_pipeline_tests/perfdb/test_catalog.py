"""Objects, features, alarm definitions and reading alarm occurrences."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InputError, NotFound
from jobs_pipeline.perfdb.records import AlarmOccurrence, Feature

NASTY_NAMES = (
    "x'; DROP TABLE objects; --",
    'quote"double',
    "semi;colon",
    "percent%_under",
    "Ünïcødé 風車",
)
MINUTE = timedelta(minutes=1)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 1, 1, hour, minute, tzinfo=UTC)


def table_count(perfdb: PerfDB, table: str) -> int:
    with perfdb.engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


# --- objects ---------------------------------------------------------------------------------


def test_ensure_objects_is_idempotent_and_stores_names_literally(perfdb: PerfDB) -> None:
    ids = perfdb.catalog.ensure_objects(["LAN-02", "LAN-01", *NASTY_NAMES])
    again = perfdb.catalog.ensure_objects(["LAN-01", "LAN-03", "LAN-01"])

    assert again["LAN-01"] == ids["LAN-01"]
    assert set(again) == {"LAN-01", "LAN-03"}
    assert len(set(ids.values()) | {again["LAN-03"]}) == 2 + len(NASTY_NAMES) + 1
    assert perfdb.catalog.list_objects() == sorted(["LAN-01", "LAN-02", "LAN-03", *NASTY_NAMES])
    assert perfdb.catalog.object_ids(list(NASTY_NAMES)) == {name: ids[name] for name in NASTY_NAMES}
    assert table_count(perfdb, "objects") == 3 + len(NASTY_NAMES)


def test_object_ids_lists_every_unknown_name(perfdb: PerfDB) -> None:
    perfdb.catalog.ensure_objects(["LAN-01"])

    with pytest.raises(NotFound) as info:
        perfdb.catalog.object_ids(["LAN-01", "LAN-99", "x'; DROP TABLE objects; --"])

    assert str(info.value) == "unknown object names: 'LAN-99', \"x'; DROP TABLE objects; --\""
    assert perfdb.catalog.list_objects() == ["LAN-01"]


# --- features --------------------------------------------------------------------------------


def test_ensure_feature_defaults_to_ten_minutes_and_keeps_an_existing_definition(
    perfdb: PerfDB,
) -> None:
    power = perfdb.catalog.ensure_feature("active_power", unit="kW")
    wind = perfdb.catalog.ensure_feature(
        "wind_speed", unit="m/s", sampling_period=timedelta(1 / 24)
    )
    again = perfdb.catalog.ensure_feature("active_power", unit="MW", sampling_period=timedelta(1))

    assert (power.unit, power.sampling_period) == ("kW", timedelta(minutes=10))
    assert wind.sampling_period == timedelta(hours=1)
    assert again == power
    assert perfdb.catalog.get_feature("wind_speed") == wind
    assert perfdb.catalog.list_features() == [power, wind]
    with pytest.raises(NotFound, match="unknown feature 'rotor'"):
        perfdb.catalog.get_feature("rotor")


def test_set_sampling_period_changes_only_that_feature(perfdb: PerfDB) -> None:
    power = perfdb.catalog.ensure_feature("active_power", unit="kW")
    wind = perfdb.catalog.ensure_feature("wind_speed")

    before, after = perfdb.catalog.set_sampling_period("active_power", timedelta(seconds=60))

    assert before == power
    assert after == Feature(id=power.id, name="active_power", unit="kW", sampling_period=MINUTE)
    assert perfdb.catalog.list_features() == [after, wind]


@pytest.mark.parametrize("seconds", [0, -60, 1.5])
def test_sampling_periods_are_positive_whole_seconds(perfdb: PerfDB, seconds: float) -> None:
    perfdb.catalog.ensure_feature("active_power")
    period = timedelta(seconds=seconds)

    with pytest.raises(InputError, match="positive whole number of seconds"):
        perfdb.catalog.set_sampling_period("active_power", period)
    with pytest.raises(InputError, match="positive whole number of seconds"):
        perfdb.catalog.ensure_feature("wind_speed", sampling_period=period)

    assert [f.sampling_period for f in perfdb.catalog.list_features()] == [10 * MINUTE]
    with pytest.raises(NotFound, match="unknown feature 'rotor'"):
        perfdb.catalog.set_sampling_period("rotor", MINUTE)


def test_feature_overview_counts_objects_and_samples_and_spans_them(perfdb: PerfDB) -> None:
    perfdb.values.import_frame(
        pd.DataFrame(
            {
                "object": ["B", "A", "A", "A"],
                "feature": ["power", "power", "power", "wind"],
                "timestamp": [at(3), at(1), at(2, 30), at(0)],
                "value": [1.0, None, 2.0, 3.0],
            }
        )
    )
    perfdb.catalog.ensure_feature("pitch", unit="deg", sampling_period=MINUTE)

    overview = perfdb.catalog.feature_overview()

    assert [
        (o.feature.name, o.feature.unit, o.feature.sampling_period, o.objects, o.samples)
        for o in overview
    ] == [
        ("pitch", "deg", MINUTE, 0, 0),
        ("power", "", 10 * MINUTE, 2, 3),
        ("wind", "", 10 * MINUTE, 1, 1),
    ]
    assert [(o.first, o.last) for o in overview] == [
        (None, None),
        (at(1), at(3)),
        (at(0), at(0)),
    ]
    assert overview[1].first is not None
    assert overview[1].first.tzinfo is not None


# --- alarm definitions -----------------------------------------------------------------------


def test_define_alarm_creates_and_then_replaces_a_manufacturer_id(perfdb: PerfDB) -> None:
    perfdb.catalog.ensure_feature("active_power", unit="kW")
    perfdb.catalog.ensure_feature("gear_temp", unit="degC")

    first = perfdb.catalog.define_alarm(
        alarm_id=3001,
        name="Power high",
        feature="active_power",
        operator=">",
        threshold=2100.0,
        clear_threshold=2000.0,
        min_duration=timedelta(minutes=30),
    )
    assert (first.id, first.name, first.feature.name, first.feature.unit) == (
        3001,
        "Power high",
        "active_power",
        "kW",
    )
    assert (first.operator, first.threshold, first.clear_threshold, first.min_duration) == (
        ">",
        2100.0,
        2000.0,
        timedelta(minutes=30),
    )

    replaced = perfdb.catalog.define_alarm(
        alarm_id=3001, name="Gear hot", feature="gear_temp", operator=">=", threshold=80.5
    )
    other = perfdb.catalog.define_alarm(
        alarm_id=17, name="Power low", feature="active_power", operator="<", threshold=-5
    )

    assert (replaced.name, replaced.feature.name, replaced.clear_threshold) == (
        "Gear hot",
        "gear_temp",
        None,
    )
    assert replaced.min_duration == timedelta(0)
    assert perfdb.catalog.list_alarms() == [other, replaced]
    assert perfdb.catalog.alarms([3001]) == {3001: replaced}


INVALID_RULES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown operator": (dict(operator="=>", threshold=1.0), "unknown operator '=>'"),
    "clear above threshold for >": (
        dict(operator=">", threshold=10.0, clear_threshold=11.0),
        "clear threshold 11.0 must be <= the threshold 10.0 for operator '>'",
    ),
    "clear above threshold for >=": (
        dict(operator=">=", threshold=10.0, clear_threshold=10.5),
        "must be <= the threshold",
    ),
    "clear below threshold for <": (
        dict(operator="<", threshold=10.0, clear_threshold=9.0),
        "clear threshold 9.0 must be >= the threshold 10.0 for operator '<'",
    ),
    "clear threshold with ==": (
        dict(operator="==", threshold=1.0, clear_threshold=1.0),
        "a clear threshold does not apply to operator '=='",
    ),
    "negative duration": (
        dict(operator=">", threshold=1.0, min_duration=timedelta(seconds=-1)),
        "minimum duration must not be negative",
    ),
    "NaN threshold": (dict(operator=">", threshold=float("nan")), "threshold must be a finite"),
    "infinite clear threshold": (
        dict(operator="<", threshold=1.0, clear_threshold=float("inf")),
        "clear threshold must be a finite",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_RULES))
def test_define_alarm_rejects_invalid_rules_and_writes_nothing(perfdb: PerfDB, case: str) -> None:
    perfdb.catalog.ensure_feature("active_power")
    rule, message = INVALID_RULES[case]

    with pytest.raises(InputError, match=re.escape(message)):
        perfdb.catalog.define_alarm(alarm_id=1, name="bad", feature="active_power", **rule)

    assert perfdb.catalog.list_alarms() == []


def test_define_alarm_accepts_clear_threshold_on_the_correct_side(perfdb: PerfDB) -> None:
    perfdb.catalog.ensure_feature("f")
    low = perfdb.catalog.define_alarm(
        alarm_id=1, name="low", feature="f", operator="<=", threshold=5, clear_threshold=5
    )
    high = perfdb.catalog.define_alarm(
        alarm_id=2, name="high", feature="f", operator=">", threshold=5, clear_threshold=4
    )
    assert (low.clear_threshold, high.clear_threshold) == (5, 4)


def test_alarm_definitions_need_a_known_feature_and_lookups_list_unknown_ids(
    perfdb: PerfDB,
) -> None:
    with pytest.raises(NotFound, match="unknown feature 'nope'"):
        perfdb.catalog.define_alarm(
            alarm_id=1, name="x", feature="nope", operator=">", threshold=1.0
        )
    perfdb.catalog.ensure_feature("f")
    perfdb.catalog.define_alarm(alarm_id=5, name="x", feature="f", operator=">", threshold=1.0)

    with pytest.raises(NotFound) as info:
        perfdb.catalog.alarms([5, 404, 9])
    assert str(info.value) == "unknown alarm ids: 404, 9"
    assert list(perfdb.catalog.alarms([5])) == [5]


# --- occurrences -----------------------------------------------------------------------------


@pytest.fixture
def fleet(perfdb: PerfDB) -> dict[str, int]:
    ids = perfdb.catalog.ensure_objects(["LAN-01", "LAN-02", "x'; DROP TABLE objects; --"])
    perfdb.catalog.ensure_feature("active_power")
    for alarm_id in (1, 2):
        perfdb.catalog.define_alarm(
            alarm_id=alarm_id,
            name=f"a{alarm_id}",
            feature="active_power",
            operator=">",
            threshold=1,
        )
    return ids


def test_occurrences_are_listed_in_order_and_filtered(
    perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    nasty = "x'; DROP TABLE objects; --"
    day = (at(0), at(23))
    perfdb.occurrences.replace(
        object_id=fleet["LAN-02"], alarm_id=1, start=day[0], end=day[1], spans=[(at(5), at(6), 9)]
    )
    written = perfdb.occurrences.replace(
        object_id=fleet["LAN-01"],
        alarm_id=2,
        start=day[0],
        end=day[1],
        spans=[(at(3), at(4, 30), 7.5), (at(1), at(2), None)],
        step_id=None,
    )
    perfdb.occurrences.replace(
        object_id=fleet[nasty], alarm_id=1, start=day[0], end=day[1], spans=[(at(8), at(9), 1.5)]
    )
    assert written == 2

    everything = perfdb.occurrences.list()
    assert [(o.object_name, o.alarm_id, o.start) for o in everything] == [
        ("LAN-01", 2, at(1)),
        ("LAN-01", 2, at(3)),
        ("LAN-02", 1, at(5)),
        (nasty, 1, at(8)),
    ]
    assert everything[0] == AlarmOccurrence(
        object_name="LAN-01", alarm_id=2, start=at(1), end=at(2), peak_value=None
    )
    assert everything[1].end == at(4, 30) and everything[1].peak_value == 7.5
    assert all(o.start.utcoffset() == timedelta(0) for o in everything)

    assert [o.start for o in perfdb.occurrences.list(object_name="LAN-01")] == [at(1), at(3)]
    assert [o.object_name for o in perfdb.occurrences.list(alarm_id=1)] == ["LAN-02", nasty]
    assert [o.start for o in perfdb.occurrences.list(object_name=nasty)] == [at(8)]
    assert perfdb.occurrences.list(object_name="LAN-02", alarm_id=2) == []
    assert perfdb.occurrences.list(object_name="' OR '1'='1") == []


def test_replacing_a_period_keeps_occurrences_starting_outside_it(
    perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    lan = fleet["LAN-01"]
    perfdb.occurrences.replace(
        object_id=lan,
        alarm_id=1,
        start=at(0),
        end=at(23),
        spans=[(at(1), at(2), 1.0), (at(10), at(11), 2.0), (at(20), at(21), 3.0)],
    )
    perfdb.occurrences.replace(
        object_id=lan, alarm_id=2, start=at(0), end=at(23), spans=[(at(10), at(11), 4.0)]
    )

    # [10:00, 20:00) is recomputed: the occurrence at 10:00 goes, the one at 20:00 stays.
    for _ in range(2):  # the same recalculation twice leaves the same rows
        perfdb.occurrences.replace(
            object_id=lan, alarm_id=1, start=at(10), end=at(20), spans=[(at(12), at(13), 5.0)]
        )
        assert [(o.alarm_id, o.start, o.peak_value) for o in perfdb.occurrences.list()] == [
            (1, at(1), 1.0),
            (1, at(12), 5.0),
            (1, at(20), 3.0),
            (2, at(10), 4.0),
        ]
