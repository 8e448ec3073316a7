"""Bulk import of feature values: all-or-nothing, idempotent, NULL for no data, UTC timestamps."""

from __future__ import annotations

import io
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import ImportFailed, InputError
from jobs_pipeline.perfdb.feature_csv import parse_feature_csv
from jobs_pipeline.perfdb.feature_files import SourceFailed

HEADER = "object,feature,timestamp,value\n"


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 1, 1, hour, minute, tzinfo=UTC)


def csv(*lines: str) -> io.StringIO:
    return io.StringIO(HEADER + "".join(f"{line}\n" for line in lines))


def stored(perfdb: PerfDB) -> list[tuple[str, str, datetime, float | None]]:
    """Every stored value as (object, feature, timestamp, value), NULL as None."""
    query = sa.text(
        "SELECT o.name, f.name, v.timestamp, v.value FROM feature_values v "
        "JOIN objects o ON o.id = v.object_id JOIN features f ON f.id = v.feature_id"
    )
    with perfdb.engine.connect() as connection:
        rows = connection.execute(query).all()
    result = []
    for obj, feature, timestamp, value in rows:
        if isinstance(timestamp, str):  # SQLite keeps the fixed-format UTC text
            timestamp = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        result.append((obj, feature, timestamp.astimezone(UTC), value))
    return sorted(result, key=lambda row: (row[0], row[1], row[2]))


def counts(perfdb: PerfDB) -> dict[str, int]:
    with perfdb.engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("objects", "features", "feature_values")
        }


def test_import_creates_objects_and_features_and_stores_the_values(perfdb: PerfDB) -> None:
    perfdb.catalog.ensure_objects(["LAN-01"])

    summary = perfdb.values.import_csv(
        csv(
            "LAN-01,active_power,2024-01-01T00:00:00Z,1500.5",
            "LAN-02,active_power,2024-01-01T00:10:00Z,-3",
            " LAN-02 , wind_speed ,2024-01-01T00:00:00Z, 7.25 ",
        )
    )

    assert summary.rows == 3
    assert summary.objects_created == ["LAN-02"]
    assert summary.features_created == ["active_power", "wind_speed"]
    assert stored(perfdb) == [
        ("LAN-01", "active_power", at(0), 1500.5),
        ("LAN-02", "active_power", at(0, 10), -3.0),
        ("LAN-02", "wind_speed", at(0), 7.25),
    ]
    assert perfdb.catalog.get_feature("wind_speed").sampling_period == timedelta(minutes=10)


def test_empty_value_and_nan_are_stored_as_null(perfdb: PerfDB) -> None:
    perfdb.values.import_csv(
        csv(
            "LAN-01,p,2024-01-01T00:00:00Z,",
            "LAN-01,p,2024-01-01T00:10:00Z,NaN",
            "LAN-01,p,2024-01-01T00:20:00Z,nan",
            "LAN-01,p,2024-01-01T00:30:00Z, ",
            "LAN-01,p,2024-01-01T00:40:00Z,0",
        )
    )

    assert [value for *_, value in stored(perfdb)] == [None, None, None, None, 0.0]
    with perfdb.engine.connect() as connection:
        nulls = connection.execute(
            sa.text("SELECT count(*) FROM feature_values WHERE value IS NULL")
        ).scalar_one()
    assert nulls == 4
    ids = perfdb.catalog.object_ids(["LAN-01"])
    series = perfdb.values.read(ids["LAN-01"], perfdb.catalog.get_feature("p").id, at(0), at(1))
    assert series.isna().tolist() == [True, True, True, True, False]


def test_timestamps_with_z_offsets_or_none_are_utc_instants(perfdb: PerfDB) -> None:
    perfdb.values.import_csv(
        csv(
            "A,p,2024-01-01T00:00:00Z,1",
            "A,p,2024-01-01T01:10:00+01:00,2",
            "A,p,2024-01-01 00:20:00,3",
            "A,p,2023-12-31T19:30:00-05:00,4",
            "A,p,2024-01-01T00:40:00.250000Z,5",
            "A,p,2024-01-01,1",
        )
    )

    assert [(timestamp, value) for _, _, timestamp, value in stored(perfdb)] == [
        (at(0), 1.0),  # the bare date is midnight UTC, the same instant (and value) as line 2
        (at(0, 10), 2.0),
        (at(0, 20), 3.0),
        (at(0, 30), 4.0),
        (at(0, 40) + timedelta(milliseconds=250), 5.0),
    ]


def test_read_is_half_open_ordered_and_utc(perfdb: PerfDB) -> None:
    perfdb.values.import_csv(
        csv(*(f"A,p,2024-01-01T00:{minute:02d}:00Z,{minute}" for minute in (50, 0, 10, 40, 30)))
    )
    object_id = perfdb.catalog.object_ids(["A"])["A"]
    feature_id = perfdb.catalog.get_feature("p").id

    series = perfdb.values.read(object_id, feature_id, at(0, 10), at(0, 40))

    expected = pd.Series(
        [10.0, 30.0], index=pd.DatetimeIndex([at(0, 10), at(0, 30)]).as_unit(series.index.unit)
    )
    pd.testing.assert_series_equal(series, expected, check_freq=False)
    assert str(series.index.tz) == "UTC"
    assert perfdb.values.read(object_id, feature_id, at(2), at(3)).empty


def test_reimporting_the_same_rows_is_idempotent_and_new_values_replace_old(
    perfdb: PerfDB,
) -> None:
    lines = [f"LAN-{n:02d},p,2024-01-01T00:{m:02d}:00Z,{n * m}" for n in (1, 2) for m in (0, 10)]
    perfdb.values.import_csv(csv(*lines))
    first = stored(perfdb)

    again = perfdb.values.import_csv(csv(*lines))

    assert again.rows == 4
    assert again.objects_created == [] and again.features_created == []
    assert stored(perfdb) == first
    assert counts(perfdb) == {"objects": 2, "features": 1, "feature_values": 4}

    perfdb.values.import_csv(
        csv("LAN-01,p,2024-01-01T00:10:00Z,99", "LAN-02,p,2024-01-01T00:00:00Z,")
    )
    changed = {(row[0], row[2]): row[3] for row in stored(perfdb)}
    assert changed == {
        ("LAN-01", at(0)): 0.0,
        ("LAN-01", at(0, 10)): 99.0,
        ("LAN-02", at(0)): None,
        ("LAN-02", at(0, 10)): 20.0,
    }


def test_identical_duplicate_rows_are_stored_once(perfdb: PerfDB) -> None:
    summary = perfdb.values.import_csv(
        csv(
            "A,p,2024-01-01T00:10:00Z,1",
            "A,p,2024-01-01T00:00:00Z,",
            "A,p,2024-01-01T01:10:00+01:00,1.0",
            "B,p,2024-01-01T00:00:00Z,4",
            "A,p,2024-01-01T00:00:00Z,NaN",
        )
    )

    assert summary.rows == 3
    assert [(o, t, v) for o, _, t, v in stored(perfdb)] == [
        ("A", at(0), None),
        ("A", at(0, 10), 1.0),
        ("B", at(0), 4.0),
    ]


def test_duplicate_rows_with_different_values_refuse_the_whole_file(perfdb: PerfDB) -> None:
    perfdb.values.import_csv(csv("OLD,p,2024-01-01T00:00:00Z,1"))
    before = stored(perfdb), counts(perfdb)
    lines = [
        "A,p,2024-01-01T00:10:00Z,1",
        "B,p,2024-01-01T00:00:00Z,4",
        "A,q,2024-01-01T00:10:00Z,7",
        "A,p,2024-01-01T01:10:00+01:00,1",  # the same as line 2
        "B,p,2024-01-01T00:00:00Z,",  # differs from line 3
        "A,p,2024-01-01T00:10:00Z,3",  # differs from lines 2 and 5, but comes later
    ]

    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(csv(*lines))

    assert str(info.value) == (
        "line 6: duplicate of line 3 ('B', 'p', 2024-01-01T00:00:00+00:00) with another value: "
        "no value instead of 4"
    )
    assert (stored(perfdb), counts(perfdb)) == before


def test_duplicate_rows_of_a_frame_are_named_by_position(perfdb: PerfDB) -> None:
    frame = pd.DataFrame(
        {
            "object": ["A", "A", "A"],
            "feature": ["p", "p", "p"],
            "timestamp": [at(0), at(0, 10), at(0)],
            "value": [1.0, 2.0, 1.5],
        }
    )

    with pytest.raises(ImportFailed, match=r"^row 2: duplicate of row 0 \('A', 'p', "):
        perfdb.values.import_frame(frame)
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_infinite_values_of_a_frame_are_refused(perfdb: PerfDB) -> None:
    frame = pd.DataFrame(
        {"object": ["A", "A"], "feature": ["p", "p"], "timestamp": [at(0), at(1)]}
    ).assign(value=[1.0, -np.inf])

    with pytest.raises(ImportFailed, match=r"^row 1: bad number -inf$"):
        perfdb.values.import_frame(frame)
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_new_features_get_the_sampling_period_given_existing_ones_must_have_it(
    perfdb: PerfDB,
) -> None:
    perfdb.values.import_csv(csv("A,old,2024-01-01T00:00:00Z,1"))

    summary = perfdb.values.import_csv(
        csv("A,fast,2024-01-01T00:00:00Z,1"), sampling_period=timedelta(seconds=60)
    )
    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(
            csv("A,old,2024-01-01T00:10:00Z,2", "A,new,2024-01-01T00:00:00Z,1"),
            sampling_period=timedelta(seconds=60),
        )
    again = perfdb.values.import_csv(
        csv("A,fast,2024-01-01T00:01:00Z,2"), sampling_period=timedelta(seconds=60)
    )

    assert summary.features_created == ["fast"]
    assert str(info.value) == (
        "feature 'old' has a sampling period of 600 s, not 60 s "
        "(change it with features set-period)"
    )
    assert again.rows == 1
    periods = {f.name: f.sampling_period for f in perfdb.catalog.list_features()}
    assert periods == {"fast": timedelta(minutes=1), "old": timedelta(minutes=10)}
    assert counts(perfdb) == {"objects": 1, "features": 2, "feature_values": 3}


@pytest.mark.parametrize("seconds", [0, -600, 0.5])
def test_a_sampling_period_that_is_not_whole_positive_seconds_is_refused(
    perfdb: PerfDB, seconds: float
) -> None:
    with pytest.raises(InputError, match="positive whole number of seconds"):
        perfdb.values.import_csv(
            csv("A,p,2024-01-01T00:00:00Z,1"), sampling_period=timedelta(seconds=seconds)
        )
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_a_parsed_file_is_indexed_by_line(perfdb: PerfDB) -> None:
    frame = parse_feature_csv(csv("A,p,2024-01-01T00:00:00Z,1", "", "B,p,2024-01-01T00:00Z,2"))

    assert frame.index.tolist() == [2, 4]
    assert frame["timestamp"].tolist() == [pd.Timestamp(at(0))] * 2


BAD_FILES = {
    "bad number": (
        ["A,p,2024-01-01T00:00:00Z,1", "B,p,2024-01-01T00:10:00Z,twelve"],
        "line 3: bad number 'twelve'",
    ),
    "extra field": (
        ["A,p,2024-01-01T00:00:00Z,1", "B,p,2024-01-01T00:10:00Z,12,5"],
        "line 3: 5 fields, expected 4",
    ),
    "open quote": (
        ["A,p,2024-01-01T00:00:00Z,1", '"B,p,2024-01-01T00:10:00Z,12', "C,p,2024-01-01,1"],
        "line 3: a quoted field that never ends",
    ),
    "after blank lines": (
        ["A,p,2024-01-01T00:00:00Z,1", "", "", "B,p,2024-01-01T00:10:00Z,NA"],
        "line 5: bad number 'NA'",
    ),
    "not a number": (
        ["A,p,2024-01-01T00:00:00Z,1", "A,p,2024-01-01T00:10:00Z,1.2.3"],
        "line 3: bad number '1.2.3'",
    ),
    "infinite": (
        [
            "A,p,2024-01-01T00:00:00Z,1",
            "A,p,2024-01-01T00:10:00Z,2",
            "A,p,2024-01-01T00:20:00Z,inf",
        ],
        "line 4: bad number 'inf'",
    ),
    "bad timestamp": (
        ["A,p,2024-01-01T00:00:00Z,1", "A,p,yesterday,2", "A,p,2024-02-30T00:00:00Z,3"],
        "line 3: bad timestamp 'yesterday' (and 1 more lines)",
    ),
    "empty timestamp": (["A,p,,2"], "line 2: bad timestamp ''"),
    "empty object": (
        ["A,p,2024-01-01T00:00:00Z,1", " ,p,2024-01-01T00:00:00Z,2"],
        "line 3: empty object name",
    ),
    "empty feature": (["A,,2024-01-01T00:00:00Z,1"], "line 2: empty feature name"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_bad_line_is_named_and_nothing_is_imported(perfdb: PerfDB, case: str) -> None:
    perfdb.values.import_csv(csv("OLD,p,2024-01-01T00:00:00Z,1"))
    before = stored(perfdb), counts(perfdb)
    lines, message = BAD_FILES[case]

    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(csv(*lines))

    assert message in str(info.value)
    assert (stored(perfdb), counts(perfdb)) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("object,feature,value\nA,p,1\n", "missing column(s) timestamp"),
        ("Object,FEATURE,when,value\nA,p,x,1\n", "missing column(s) timestamp"),
        ("", "the CSV is empty"),
    ],
    ids=["missing-timestamp", "renamed-column", "empty-file"],
)
def test_a_file_without_the_required_columns_imports_nothing(
    perfdb: PerfDB, text: str, message: str
) -> None:
    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(io.StringIO(text))
    assert message in str(info.value)
    assert "expected" in str(info.value)
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_header_case_extra_columns_and_a_file_path_are_accepted(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    path = tmp_path / "values.csv"
    path.write_text(
        " Object,Feature ,TIMESTAMP,value,comment\n"
        '"x\'; DROP TABLE objects; --","temp; ""inner""",2024-01-01T00:00:00Z,1,ok\n',
        encoding="utf-8",
    )

    summary = perfdb.values.import_csv(path)

    assert summary.rows == 1
    assert stored(perfdb) == [("x'; DROP TABLE objects; --", 'temp; "inner"', at(0), 1.0)]
    with pytest.raises(ImportFailed, match="no such file"):
        perfdb.values.import_csv(tmp_path / "missing.csv")


def test_only_a_header_imports_nothing(perfdb: PerfDB) -> None:
    assert perfdb.values.import_csv(csv()).rows == 0
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_import_frame_converts_timestamps_to_utc(perfdb: PerfDB) -> None:
    berlin = pd.DatetimeIndex(["2024-01-01 01:00", "2024-01-01 01:10"]).tz_localize("Europe/Berlin")
    naive = pd.DatetimeIndex(["2024-01-01 00:20", "2024-01-01 00:30"])

    summary = perfdb.values.import_frame(
        pd.DataFrame(
            {
                "object": ["A", "A"],
                "feature": ["p", "p"],
                "timestamp": pd.Series(berlin),
                "value": [1.0, np.nan],
            }
        )
    )
    perfdb.values.import_frame(
        pd.DataFrame(
            {"object": ["A", "A"], "feature": ["p", "p"], "timestamp": naive, "value": [3.0, None]}
        )
    )

    assert summary.rows == 2
    assert [(t, v) for *_, t, v in stored(perfdb)] == [
        (at(0), 1.0),
        (at(0, 10), None),
        (at(0, 20), 3.0),
        (at(0, 30), None),
    ]


def test_a_large_import_is_complete_and_repeatable(perfdb: PerfDB) -> None:
    times = pd.date_range("2024-01-01", periods=2_000, freq="10min", tz="UTC")
    rng = np.random.default_rng(7)
    values = rng.normal(size=3 * len(times))
    values[::50] = np.nan
    frame = pd.DataFrame(
        {
            "object": np.repeat(["T1", "T2", "T3"], len(times)),
            "feature": "power",
            "timestamp": np.tile(times, 3),
            "value": values,
        }
    ).sample(frac=1.0, random_state=1)  # shuffled: the import must not rely on order

    assert perfdb.values.import_frame(frame).rows == 6_000
    assert perfdb.values.import_frame(frame).rows == 6_000

    assert perfdb.values.count() == 6_000
    ids = perfdb.catalog.object_ids(["T2"])
    feature_id = perfdb.catalog.get_feature("power").id
    series = perfdb.values.read(ids["T2"], feature_id, times[0], times[-1] + timedelta(minutes=1))
    expected = values[len(times) : 2 * len(times)]
    assert len(series) == len(expected)
    np.testing.assert_array_equal(series.to_numpy(), expected)
    assert (series.index == times).all()


# --- streamed imports: several chunks, one transaction ---------------------------------------


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text(HEADER + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def orphans(perfdb: PerfDB) -> int:
    """Values whose object or feature does not exist (there are no foreign keys to stop it)."""
    query = sa.text(
        "SELECT count(*) FROM feature_values v "
        "WHERE NOT EXISTS (SELECT 1 FROM objects o WHERE o.id = v.object_id) "
        "OR NOT EXISTS (SELECT 1 FROM features f WHERE f.id = v.feature_id)"
    )
    with perfdb.engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


GOOD_LINES = [f"T{n},p,2024-01-01T00:{m:02d}:00Z,{n + m}" for n in (1, 2, 3) for m in (0, 10, 20)]


def test_a_file_in_several_chunks_is_imported_whole_and_again_changes_nothing(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "values.csv", *GOOD_LINES)

    first = perfdb.values.import_csv(path, chunk_rows=2)
    again = perfdb.values.import_csv(path, chunk_rows=2)

    assert (first.rows, first.new_values, first.changed_values) == (9, 9, 0)
    assert (again.rows, again.new_values, again.changed_values) == (9, 0, 0)
    assert counts(perfdb) == {"objects": 3, "features": 1, "feature_values": 9}
    assert orphans(perfdb) == 0


@pytest.mark.parametrize("chunk_rows", [1, 2, 4])
def test_a_bad_last_chunk_writes_nothing(perfdb: PerfDB, tmp_path: Path, chunk_rows: int) -> None:
    perfdb.values.import_csv(csv("OLD,p,2024-01-01T00:00:00Z,1"))
    before = stored(perfdb), counts(perfdb)
    path = write_lines(tmp_path / "bad.csv", *GOOD_LINES, "NEW,q,2024-01-01T00:00:00Z,oops")

    with pytest.raises(ImportFailed, match=r"^line 11: bad number 'oops'$"):
        perfdb.values.import_csv(path, chunk_rows=chunk_rows)

    assert (stored(perfdb), counts(perfdb)) == before
    assert orphans(perfdb) == 0


def test_duplicates_across_chunks_are_refused_and_identical_ones_kept_once(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    perfdb.values.import_csv(csv("T1,p,2024-01-01T00:10:00Z,11"))  # stored before
    same = write_lines(tmp_path / "same.csv", *GOOD_LINES, "T1,p,2024-01-01T00:00:00Z,1")
    other = write_lines(tmp_path / "other.csv", *GOOD_LINES, "T2,p,2024-01-01T00:10:00Z,5")

    summary = perfdb.values.import_csv(same, chunk_rows=2)
    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(other, chunk_rows=2)

    assert (summary.new_values, summary.changed_values) == (8, 0)
    assert counts(perfdb)["feature_values"] == 9
    assert str(info.value) == (
        "line 11: duplicate of line 6 ('T2', 'p', 2024-01-01T00:10:00+00:00) with another "
        "value: 5 instead of 12"
    )


def test_a_duplicate_of_a_value_written_by_an_earlier_chunk_is_refused(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "late.csv", *GOOD_LINES, "T1,p,2024-01-01T00:00:00Z,99")

    with pytest.raises(ImportFailed, match=r"^line 11: duplicate of an earlier line .*T1"):
        perfdb.values.import_csv(path, chunk_rows=3)

    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_parquet_files_are_imported_and_bad_rows_named(perfdb: PerfDB, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "Object": ["A", "A", "B"],
            "feature": ["p", "p", "p"],
            "timestamp": pd.DatetimeIndex([at(0), at(0, 10), at(0)]),
            "value": [1.0, np.nan, 3.0],
        }
    )
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    frame.to_parquet(good)
    frame.assign(value=[1.0, np.inf, 3.0]).to_parquet(bad)

    summary = perfdb.values.import_csv(good, chunk_rows=2)
    with pytest.raises(ImportFailed, match=r"^row 2: bad number"):
        perfdb.values.import_csv(bad, chunk_rows=2)

    assert summary.new_values == 3
    assert stored(perfdb) == [
        ("A", "p", at(0), 1.0),
        ("A", "p", at(0, 10), None),
        ("B", "p", at(0), 3.0),
    ]


def test_a_file_that_is_neither_csv_nor_parquet_is_refused(perfdb: PerfDB, tmp_path: Path) -> None:
    image = tmp_path / "picture.parquet"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    binary = tmp_path / "picture.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(64))

    with pytest.raises(ImportFailed, match="cannot read the Parquet file"):
        perfdb.values.import_csv(image)
    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(binary)
    assert str(info.value) == "line 1: not UTF-8 text (byte 0x89 at column 1): not a CSV file"
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


def test_objects_and_features_with_values_cannot_be_deleted(perfdb: PerfDB) -> None:
    perfdb.values.import_csv(csv("A,p,2024-01-01T00:00:00Z,1"))

    for table in ("objects", "features"):
        with pytest.raises(sa.exc.DatabaseError, match="has feature values"):
            with perfdb.engine.begin() as connection:
                connection.execute(sa.text(f"DELETE FROM {table}"))
    assert orphans(perfdb) == 0
    assert counts(perfdb) == {"objects": 1, "features": 1, "feature_values": 1}


def test_an_import_tells_each_chunk_it_wrote(perfdb: PerfDB, tmp_path: Path) -> None:
    path = tmp_path / "chunks.csv"
    lines = ["object,feature,timestamp,value"] + [
        f"WT-01,power,2024-01-{1 + i // 144:02d}T{i % 144 // 6:02d}:{i % 6 * 10:02d}:00Z,{i}"
        for i in range(300)
    ]
    path.write_text("\n".join(lines) + "\n")
    told: list[int] = []

    summary = perfdb.values.import_csv(str(path), chunk_rows=20, on_chunk=told.append)

    assert sum(told) == summary.rows == 300
    assert len(told) >= 2  # progress comes chunk by chunk, not once at the end


# --- many chunks, and a bad last one ----------------------------------------------------------

# 120 values of three objects: some 4 kB, so that chunks of 10 rows (1 kB blocks for pyarrow)
# make several chunks on the fast path and on the exact one.
STAMPS = pd.date_range("2024-01-01", periods=40, freq="10min", tz="UTC")
MANY_LINES = [
    f"T{n},p,{stamp:%Y-%m-%dT%H:%M:%SZ},{n * 1000 + i}"
    for n in (1, 2, 3)
    for i, stamp in enumerate(STAMPS)
]
BAD_LAST_LINES = {
    "bad number": ("T3,q,2024-01-01T00:00:00Z,oops", r"^line 122: bad number 'oops'$"),
    "extra field": ("T3,q,2024-01-01T00:00:00Z,1,2", r"^line 122: 5 fields, expected 4$"),
    "duplicate of the first chunk": (
        "T1,p,2024-01-01T00:00:00Z,-1",
        r"^line 122: duplicate of (an earlier line|line 2) \('T1', 'p', "
        r"2024-01-01T00:00:00\+00:00\) with another value: -1 instead of 100[01]$",
    ),
}


def test_a_file_in_many_chunks_is_imported_whole_and_again_changes_nothing(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "many.csv", *MANY_LINES)
    told: list[int] = []

    changed = [line + "5" if i % 10 == 0 else line for i, line in enumerate(MANY_LINES)]
    more = [f"T4,p,{stamp:%Y-%m-%dT%H:%M:%SZ},{i}" for i, stamp in enumerate(STAMPS[:5])]
    other = write_lines(tmp_path / "other.csv", *changed, *more)

    first = perfdb.values.import_csv(path, chunk_rows=10, on_chunk=told.append)
    again = perfdb.values.import_csv(path, chunk_rows=10)
    third = perfdb.values.import_csv(other, chunk_rows=10)

    assert len(told) >= 3 and sum(told) == 120
    assert (first.rows, first.new_values, first.changed_values) == (120, 120, 0)
    assert (again.rows, again.new_values, again.changed_values) == (120, 0, 0)
    assert (third.rows, third.new_values, third.changed_values) == (125, 5, 12)
    assert [value for *_, value in stored(perfdb)] == [
        float(n * 1000 + i) * (10 if i % 10 == 0 else 1) + (5 if i % 10 == 0 else 0)
        for n in (1, 2, 3)
        for i in range(40)
    ] + [float(i) for i in range(5)]


@pytest.mark.parametrize("case", list(BAD_LAST_LINES))
@pytest.mark.parametrize("earlier", ["nothing", "the file with other values"])
def test_a_bad_last_line_after_many_written_chunks_writes_nothing(
    perfdb: PerfDB, tmp_path: Path, case: str, earlier: str
) -> None:
    if earlier != "nothing":  # the re-import goes through the staging table and the merge
        changed = [line.replace(",", ",1", 3).replace(",1", ",", 2) for line in MANY_LINES]
        perfdb.values.import_csv(write_lines(tmp_path / "earlier.csv", *changed))
    before = stored(perfdb), counts(perfdb)
    last_line, message = BAD_LAST_LINES[case]
    path = write_lines(tmp_path / "bad.csv", *MANY_LINES, last_line)
    told: list[int] = []

    with pytest.raises(ImportFailed, match=message):
        perfdb.values.import_csv(path, chunk_rows=10, on_chunk=told.append)

    assert len(told) >= 3  # chunks were written before the last one was refused
    assert (stored(perfdb), counts(perfdb)) == before
    assert orphans(perfdb) == 0


def test_a_bad_last_row_group_of_a_parquet_file_writes_nothing(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    frame = pd.DataFrame(
        {
            "object": np.repeat(["T1", "T2", "T3"], 40),
            "feature": "p",
            "timestamp": np.tile(STAMPS, 3),
            "value": np.arange(120.0),
        }
    )
    bad = pd.concat([frame, frame.iloc[[0]].assign(value=-1.0)], ignore_index=True)
    path = tmp_path / "bad.parquet"
    bad.to_parquet(path, row_group_size=10)
    told: list[int] = []

    with pytest.raises(ImportFailed) as info:
        perfdb.values.import_csv(path, chunk_rows=10, on_chunk=told.append)

    assert len(told) == 13  # every chunk was written, then the merge refused the last
    assert str(info.value) == (
        "row 121: duplicate of an earlier row ('T1', 'p', 2024-01-01T00:00:00+00:00) with "
        "another value: -1 instead of 0"
    )
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}


# --- a file that changes under the import -----------------------------------------------------


def _change(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    elif how == "grew":
        with path.open("ab") as file:
            file.write(b"T9,p,2024-01-01T00:00:00Z,9\n")
    else:
        other = path.with_name("other" + path.suffix)
        other.write_bytes(path.read_bytes())
        os.replace(other, path)


CHANGES = {
    "deleted": "was deleted",
    "truncated": "was truncated from",
    "grew": "grew from",
    "replaced": "was replaced by another file",
}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("how", list(CHANGES))
def test_a_file_that_changes_during_the_import_writes_nothing(
    perfdb: PerfDB, tmp_path: Path, how: str, suffix: str
) -> None:
    perfdb.values.import_csv(csv("OLD,p,2024-01-01T00:00:00Z,1"))
    before = stored(perfdb), counts(perfdb)
    path = write_lines(tmp_path / "values.csv", *MANY_LINES)
    if suffix == ".parquet":
        frame = parse_feature_csv(path)
        path = tmp_path / "values.parquet"
        frame.to_parquet(path, row_group_size=10)

    def change_after_the_first_chunk(_rows: int) -> None:
        if not told:
            _change(path, how)
        told.append(_rows)

    told: list[int] = []
    with pytest.raises(SourceFailed) as info:
        perfdb.values.import_csv(path, chunk_rows=10, on_chunk=change_after_the_first_chunk)

    assert str(info.value).startswith(f"{path} {CHANGES[how]}")
    assert str(info.value).endswith(" while it was imported; nothing was written")
    assert (stored(perfdb), counts(perfdb)) == before


def test_a_refused_chunk_stops_the_reading_at_once(perfdb: PerfDB, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "object": np.repeat(["T1", "T2", "T3"], 40),
            "feature": "p",
            "timestamp": np.tile(STAMPS, 3),
            "value": np.arange(120.0),
        }
    )
    frame.loc[1, "timestamp"] = frame.loc[0, "timestamp"]  # a conflict in the first chunk
    path = tmp_path / "early.parquet"
    frame.to_parquet(path, row_group_size=10)

    with pytest.raises(ImportFailed) as info:  # held: the import's frames stay alive
        perfdb.values.import_csv(path, chunk_rows=10)

    assert [t for t in threading.enumerate() if t.name == "feature-file-reader"] == []
    assert str(info.value).startswith("row 2: duplicate of row 1 ")
    assert counts(perfdb) == {"objects": 0, "features": 0, "feature_values": 0}
