"""The `jobs-pipeline` command: outputs, `--json` shapes, exit codes and bad input.

Commands run in-process through `main([...])`; one test runs the installed console script.
Every bad-input case checks exit code 2, exactly one line on stderr naming the problem, nothing
on stdout and an unchanged database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import jobs_pipeline.cli as cli_module
from jobs_pipeline.cli import main
from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.migrate import head_revision
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.cli_fleet import NASTY, params, snapshot
from jobs_pipeline_tests.cli_runner import Cli
from jobs_pipeline_tests.conftest import BACKENDS, PG_ADMIN_URL

ALARM_CALC = "Alarm Calculation"
DEAD_DB = "postgresql+psycopg://root@127.0.0.1:1/nothing"


def running_job(perfdb: PerfDB, fleet: dict[str, int]) -> int:
    job = create_job(perfdb, ALARM_CALC, params(), description="running", queue=True)
    perfdb.queue.create_steps(
        job.id, [NewStep(object_id=fleet[name], alarm_id=101) for name in ("LAN-01", "LAN-02")]
    )
    perfdb.queue.claim_job(job.id, "run-1")
    return job.id


def utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(0), text
    return value


# --- db and demo -----------------------------------------------------------------------------


@pytest.mark.parametrize("empty_perfdb_url", BACKENDS, indirect=True)
def test_db_upgrade_builds_an_empty_database_and_is_repeatable(
    empty_perfdb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(empty_perfdb_url, capsys)
    # Before the schema exists, commands say what to do instead of printing SQL.
    refused = cli("job", "list")
    assert (refused.code, refused.out) == (1, "")
    assert refused.err.endswith("has no schema: run 'jobs-pipeline db upgrade'\n")
    assert refused.err.count("\n") == 1

    first = cli.ok("db", "upgrade")
    second = cli.ok("db", "upgrade")

    assert first.out.startswith("performance database ")
    assert first.out.rstrip().endswith(f"created the schema (revision {head_revision()})")
    assert second.out.rstrip().endswith(f"already current (revision {head_revision()})")
    assert cli.ok("job", "list", "--json").json == []
    assert cli.ok("alarms", "list", "--json").json == []


def test_demo_seed_stores_a_small_fleet(cli: Cli, perfdb: PerfDB) -> None:
    result = cli.ok("demo", "seed", "--objects", "2", "--days", "1", "--seed", "3")

    assert result.out.startswith("seeded 2 objects (LAN-01 .. LAN-02)")
    counts = snapshot(perfdb)
    assert counts["objects"] == 2
    assert counts["feature_values"] > 0
    assert str(counts["feature_values"]) in result.out
    assert counts["alarm_definitions"] >= 1

    before = snapshot(perfdb)
    cli.rejects("demo", "seed", "--objects", "0", naming="--objects must be a positive integer")
    cli.rejects("demo", "seed", "--days", "two", naming="--days must be a positive integer")
    assert snapshot(perfdb) == before


# --- features import -------------------------------------------------------------------------


def write_csv(directory: Path, name: str, *lines: str) -> str:
    path = directory / name
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return str(path)


def test_features_import_reports_what_it_imported(cli: Cli, perfdb: PerfDB, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "values.csv",
        "object,feature,timestamp,value",
        "LAN-01,active_power,2024-01-01T00:00:00Z,1500",
        "LAN-01,active_power,2024-01-01T01:10:00+01:00,",
        "LAN-02,active_power,2024-01-01 00:00:00,NaN",
    )

    first = cli.ok("features", "import", path)
    again = cli.ok("features", "import", path)

    assert first.out == (
        f"imported 3 values from {path}: 3 new "
        "(new objects: 2, new features: 1, sampling period 600 s)\n"
    )
    assert again.out == f"imported 3 values from {path}: 0 new\n"
    assert snapshot(perfdb)["feature_values"] == 3


def test_bad_csv_files_exit_2_and_import_nothing(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int], tmp_path: Path
) -> None:
    good = "LAN-01,active_power,2024-01-01T00:00:00Z,1"
    cases = {
        "no_value.csv": (
            ["object,feature,timestamp", "LAN-01,active_power,2024-01-01T00:00:00Z"],
            "missing column(s) value",
        ),
        "bad_number.csv": (
            ["object,feature,timestamp,value", good, "LAN-02,active_power,2024-01-01T00:10Z,1e"],
            "line 3: bad number '1e'",
        ),
        "bad_time.csv": (
            ["object,feature,timestamp,value", good, good, "LAN-02,active_power,01/02/2024,1"],
            "line 4: bad timestamp '01/02/2024'",
        ),
        "infinite.csv": (
            ["object,feature,timestamp,value", good, "LAN-02,active_power,2024-01-01T00:10Z,-inf"],
            "line 3: bad number '-inf'",
        ),
        "conflicting_duplicate.csv": (
            [
                "object,feature,timestamp,value",
                good,
                "LAN-02,active_power,2024-01-01T00:00Z,5",
                "LAN-01,active_power,2024-01-01T01:00+01:00,2",
            ],
            "line 4: duplicate of line 2 ('LAN-01', 'active_power', 2024-01-01T00:00:00+00:00) "
            "with another value: 2 instead of 1",
        ),
    }
    before = snapshot(perfdb)

    for name, (lines, message) in cases.items():
        cli.rejects("features", "import", write_csv(tmp_path, name, *lines), naming=message)
    cli.rejects("features", "import", str(tmp_path / "absent.csv"), naming="no such file")
    path = write_csv(tmp_path, "good.csv", "object,feature,timestamp,value", good)
    for seconds in ("0", "-600", "1.5", "ten"):
        cli.rejects(
            "features",
            "import",
            path,
            "--sampling-period",
            seconds,
            naming=f"--sampling-period must be a positive whole number of seconds, got {seconds!r}",
        )
    cli.rejects(
        "features",
        "import",
        path,
        "--sampling-period",
        "60",
        naming="feature 'active_power' has a sampling period of 600 s, not 60 s",
    )

    assert snapshot(perfdb) == before


def test_files_that_are_not_feature_files_exit_2_with_the_position(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int], tmp_path: Path
) -> None:
    header, good = "object,feature,timestamp,value", "LAN-01,active_power,2024-01-01T00:00:00Z,1"
    (tmp_path / "picture.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (tmp_path / "picture.parquet").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    latin1 = f"{header}\n{good}\nLAN-02,temp\xe9,2024-01-01,1\n"
    (tmp_path / "latin1.csv").write_bytes(latin1.encode("latin-1"))
    frame = pd.DataFrame(
        {
            "object": ["LAN-01", "LAN-01", "LAN-01"],
            "feature": "active_power",
            "timestamp": pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01"]),
            "value": ["1", "2", "3"],
        }
    )
    frame.drop(columns="timestamp").to_parquet(tmp_path / "no_time.parquet")
    frame.assign(value=["1", "2", "three"]).to_parquet(tmp_path / "bad_number.parquet")
    frame.assign(value=[1.0, 2.0, 3.0]).to_parquet(tmp_path / "duplicate.parquet")
    cases = {
        "picture.csv": "line 1: not UTF-8 text (byte 0x89 at column 1): not a CSV file",
        "picture.parquet": "cannot read the Parquet file: Parquet magic bytes not found",
        "latin1.csv": "line 3: not UTF-8 text (byte 0xe9 at column 12)",
        "extra.csv": "line 3: 5 fields, expected 4",
        "open_quote.csv": "line 2: a quoted field that never ends",
        "no_time.parquet": "missing column(s) timestamp",
        "bad_number.parquet": "row 3: bad number 'three'",
        "duplicate.parquet": "row 3: duplicate of row 1 ('LAN-01', 'active_power', "
        "2024-01-01T00:00:00+00:00) with another value: 3 instead of 1",
    }
    write_csv(tmp_path, "extra.csv", header, good, f"{good},5")
    write_csv(tmp_path, "open_quote.csv", header, f'"{good}', good)
    before = snapshot(perfdb)

    for name, message in cases.items():
        cli.rejects("features", "import", str(tmp_path / name), naming=message)

    assert snapshot(perfdb) == before


def many_values_csv(directory: Path, name: str, plus: int = 0) -> tuple[str, int]:
    """A CSV of 300 values of three objects (some 10 kB: many chunks of 10 rows), and its size."""
    stamps = pd.date_range("2024-01-01", periods=100, freq="10min", tz="UTC")
    lines = [
        f"T{n},p,{stamp:%Y-%m-%dT%H:%M:%SZ},{i + plus}"
        for n in (1, 2, 3)
        for i, stamp in enumerate(stamps)
    ]
    return write_csv(directory, name, "object,feature,timestamp,value", *lines), len(lines)


def on_each_chunk(monkeypatch: pytest.MonkeyPatch, act: Callable[[int, int], object]) -> None:
    """`features import` calls `act(chunks so far, values so far)` after each chunk it writes,
    where its progress display would show them (a real import, told of its progress)."""
    chunks, values = [0], [0]

    def told(rows: int) -> None:
        chunks[0] += 1
        values[0] += rows
        act(chunks[0], values[0])

    @contextmanager
    def progress(_path: str) -> Iterator[Callable[[int], object]]:
        yield told

    monkeypatch.setattr(cli_module, "_import_progress", progress)


@pytest.mark.parametrize(
    ("how", "message"),
    [("deleted", "was deleted while"), ("truncated", "was truncated from ")],
)
def test_features_import_of_a_file_that_vanishes_midway_exits_1_and_writes_nothing(
    cli: Cli, perfdb: PerfDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str,
    message: str,
) -> None:  # fmt: skip
    path, _ = many_values_csv(tmp_path, "values.csv")
    old, _ = many_values_csv(tmp_path, "old.csv", plus=1000)
    cli.ok("features", "import", old)
    before = snapshot(perfdb)

    def vanish(chunks: int, _values: int) -> None:
        if chunks == 1:
            if how == "deleted":
                Path(path).unlink()
            else:
                os.truncate(path, Path(path).stat().st_size // 2)

    on_each_chunk(monkeypatch, vanish)
    result = cli.fails("features", "import", path, "--chunk-rows", "10", naming=message)

    assert result.err == f"jobs-pipeline: error: {path} {message}" + result.err.split(message, 1)[1]
    assert result.err.endswith("while it was imported; nothing was written\n")
    assert snapshot(perfdb) == before


def terminate_the_import(url: str) -> None:
    """Ends, from another connection, the session of `url`'s database that is in a transaction."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        ended = connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :name AND state = 'idle in transaction'"
            ),
            {"name": sa.make_url(url).database},
        ).all()
    assert ended == [(True,)]


@pytest.mark.parametrize("earlier", ["nothing", "other values"])
@pytest.mark.parametrize("when", ["after the first chunk", "after the last chunk"])
def test_features_import_that_loses_its_connection_exits_1_and_writes_nothing(
    pg_perfdb_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, when: str, earlier: str,
) -> None:  # fmt: skip
    cli = Cli(pg_perfdb_url, capsys)
    perfdb = PerfDB.connect(pg_perfdb_url)
    path, rows = many_values_csv(tmp_path, "values.csv")
    if earlier == "other values":  # the import stages everything and merges it at the end
        cli.ok("features", "import", many_values_csv(tmp_path, "old.csv", plus=1000)[0])
    before = snapshot(perfdb)

    def terminate(chunks: int, values: int) -> None:
        if (chunks == 1) if when == "after the first chunk" else (values == rows):
            terminate_the_import(pg_perfdb_url)

    on_each_chunk(monkeypatch, terminate)
    result = cli.fails("features", "import", path, "--chunk-rows", "10", naming="was lost")

    assert result.err == (
        "jobs-pipeline: error: the connection to the performance database "
        f"{sa.make_url(pg_perfdb_url)} was "
        "lost (terminating connection due to administrator command): nothing was written\n"
    )
    assert snapshot(perfdb) == before
    perfdb.dispose()


def test_features_declare_their_sampling_period(cli: Cli, perfdb: PerfDB, tmp_path: Path) -> None:
    header = "object,feature,timestamp,value"
    minutely = write_csv(
        tmp_path,
        "minutely.csv",
        header,
        "LAN-01,grid_frequency,2024-01-01T00:00:00Z,50.01",
        "LAN-02,grid_frequency,2024-01-01T00:01:00Z,49.99",
        "LAN-02,grid_frequency,2024-01-01T00:02:00Z,",
    )
    default = write_csv(tmp_path, "default.csv", header, "LAN-01,temperature,2024-01-01,21")

    imported = cli.ok("features", "import", minutely, "--sampling-period", "60")
    cli.ok("features", "import", default)
    perfdb.catalog.ensure_feature("pitch", unit="deg")
    listed = cli.ok("features", "list", "--json").json
    table = cli.ok("features", "list").out.splitlines()

    assert imported.out.endswith("new features: 1, sampling period 60 s)\n")
    assert listed == [
        {
            "name": "grid_frequency",
            "unit": "",
            "sampling_period_seconds": 60,
            "objects": 2,
            "samples": 3,
            "first": "2024-01-01T00:00:00+00:00",
            "last": "2024-01-01T00:02:00+00:00",
        },
        {
            "name": "pitch",
            "unit": "deg",
            "sampling_period_seconds": 600,
            "objects": 0,
            "samples": 0,
            "first": None,
            "last": None,
        },
        {
            "name": "temperature",
            "unit": "",
            "sampling_period_seconds": 600,
            "objects": 1,
            "samples": 1,
            "first": "2024-01-01T00:00:00+00:00",
            "last": "2024-01-01T00:00:00+00:00",
        },
    ]
    assert table[0].split() == [
        "feature", "unit", "sampling", "period", "objects", "samples", "first", "last"
    ]  # fmt: skip
    assert table[1].split() == [
        "grid_frequency", "60", "s", "2", "3", "2024-01-01", "00:00:00", "2024-01-01", "00:02:00"
    ]  # fmt: skip
    assert table[2].split() == ["pitch", "deg", "600", "s", "0", "0"]

    changed = cli.ok("features", "set-period", "temperature", "900")

    assert changed.out == "feature 'temperature': sampling period 600 s -> 900 s\n"
    assert perfdb.catalog.get_feature("temperature").sampling_period == timedelta(minutes=15)


def test_features_set_period_rejects_bad_values_and_unknown_features(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    before = snapshot(perfdb)
    features = perfdb.catalog.list_features()

    for seconds in ("0", "-1", "0.5", "1e3", "soon"):
        cli.rejects(
            "features",
            "set-period",
            "active_power",
            seconds,
            naming=f"SECONDS must be a positive whole number of seconds, got {seconds!r}",
        )
    cli.rejects("features", "set-period", "rotor", "60", naming="unknown feature 'rotor'")
    cli.rejects("features", "set-period", "active_power", naming="required: SECONDS")

    assert snapshot(perfdb) == before
    assert perfdb.catalog.list_features() == features


# --- alarms ----------------------------------------------------------------------------------


def test_alarms_define_creates_and_replaces(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    result = cli.ok(
        "alarms",
        "define",
        "--id",
        "7",
        "--name",
        'Gear "hot"; ok',
        "--feature",
        "active_power",
        "--operator",
        ">=",
        "--threshold",
        "80.5",
        "--clear-threshold",
        "75",
        "--min-duration",
        "600",
    )
    assert result.out == "alarm 7 'Gear \"hot\"; ok': active_power >= 80.5\n"
    [alarm] = perfdb.catalog.alarms([7]).values()
    assert (alarm.name, alarm.operator, alarm.threshold, alarm.clear_threshold) == (
        'Gear "hot"; ok',
        ">=",
        80.5,
        75.0,
    )
    assert alarm.min_duration == timedelta(minutes=10)

    cli.ok(
        "alarms", "define", "--id", "7", "--name", "n", "--feature", "active_power",
        "--operator", "<", "--threshold", "1",
    )  # fmt: skip
    [alarm] = perfdb.catalog.alarms([7]).values()
    assert (alarm.operator, alarm.threshold, alarm.clear_threshold) == ("<", 1.0, None)


def test_alarms_define_rejects_bad_rules(cli: Cli, perfdb: PerfDB, fleet: dict[str, int]) -> None:
    base = ["alarms", "define", "--id", "9", "--name", "n", "--feature", "active_power"]
    cases = [
        (["--operator", "=>", "--threshold", "1"], "invalid choice: '=>'"),
        (["--operator", ">", "--threshold", "hot"], "--threshold must be a number, got 'hot'"),
        (["--operator", ">", "--threshold", "nan"], "--threshold must be a finite number"),
        (
            ["--operator", ">", "--threshold", "10", "--clear-threshold", "11"],
            "clear threshold 11.0 must be <= the threshold 10.0",
        ),
        (
            ["--operator", "<", "--threshold", "10", "--clear-threshold", "9"],
            "clear threshold 9.0 must be >= the threshold 10.0",
        ),
        (
            ["--operator", ">", "--threshold", "1", "--min-duration", "-60"],
            "minimum duration must be >= 0 seconds, got '-60'",
        ),
        (["--operator", ">", "--threshold", "1", "--id", "x"], "--id must be an integer"),
    ]
    before = snapshot(perfdb)

    for extra, message in cases:
        cli.rejects(*base, *extra, naming=message)
    cli.rejects(
        "alarms", "define", "--id", "9", "--name", "n", "--feature", "rotor_speed",
        "--operator", ">", "--threshold", "1", naming="unknown feature 'rotor_speed'",
    )  # fmt: skip
    cli.rejects("alarms", "define", "--id", "9", naming="required")

    assert snapshot(perfdb) == before


def test_alarms_list_prints_a_table_and_json(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for name, alarm_id, start, hours, peak in (
        ("LAN-02", 101, 5, 2, 2500.0),
        ("LAN-01", 101, 1, 1, None),
        (NASTY, 102, 3, 1, -20.5),
    ):
        perfdb.occurrences.replace(
            object_id=fleet[name],
            alarm_id=alarm_id,
            start=t0,
            end=t0 + timedelta(days=1),
            spans=[(t0 + timedelta(hours=start), t0 + timedelta(hours=start + hours), peak)],
        )

    listed = cli.ok("alarms", "list", "--json").json
    assert listed == [
        {
            "object": "LAN-01",
            "alarm_id": 101,
            "alarm_name": "High power",
            "start": "2024-01-01T01:00:00+00:00",
            "end": "2024-01-01T02:00:00+00:00",
            "peak_value": None,
        },
        {
            "object": "LAN-02",
            "alarm_id": 101,
            "alarm_name": "High power",
            "start": "2024-01-01T05:00:00+00:00",
            "end": "2024-01-01T07:00:00+00:00",
            "peak_value": 2500.0,
        },
        {
            "object": NASTY,
            "alarm_id": 102,
            "alarm_name": "Low power",
            "start": "2024-01-01T03:00:00+00:00",
            "end": "2024-01-01T04:00:00+00:00",
            "peak_value": -20.5,
        },
    ]
    assert [o["object"] for o in cli.ok("alarms", "list", "--alarm", "101", "--json").json] == [
        "LAN-01",
        "LAN-02",
    ]
    only_nasty = cli.ok("alarms", "list", "--object", NASTY, "--json").json
    assert [o["alarm_id"] for o in only_nasty] == [102]
    # SQL in a name is a name like any other: unknown here.
    cli.rejects("alarms", "list", "--object", "' OR 1=1 --", naming="unknown object names")

    table = cli.ok("alarms", "list", "--object", "LAN-02").out.splitlines()
    assert table[0].split() == ["object", "alarm", "name", "start", "end", "duration", "peak"]
    assert table[1].split() == [
        "LAN-02", "101", "High", "power", "2024-01-01", "05:00:00", "2024-01-01", "07:00:00",
        "2", "h", "2500",
    ]  # fmt: skip
    assert table[-1] == "1 occurrence"
    assert NASTY in cli.ok("alarms", "list").out
    cli.rejects("alarms", "list", "--alarm", "high", naming="--alarm must be an integer")


# --- job create ------------------------------------------------------------------------------


def test_job_create_prints_only_the_id(cli: Cli, perfdb: PerfDB, fleet: dict[str, int]) -> None:
    created = cli.ok("job", "create", "--type", ALARM_CALC, "--params", json.dumps(params()))
    queued = cli.ok(
        "job", "create", "--type", ALARM_CALC, "--params", json.dumps(params()),
        "--description", "nightly run", "--queue",
    )  # fmt: skip

    first, second = int(created.out), int(queued.out)
    assert created.out == f"{first}\n" and second == first + 1
    job = perfdb.queue.get_job(first)
    assert (job.state, job.parameters, job.description) == (JobState.CREATED, params(), "")
    job = perfdb.queue.get_job(second)
    assert (job.state, job.description, job.queue_count) == (JobState.QUEUED, "nightly run", 1)
    assert {entry.actor for entry in perfdb.queue.history(second)} == {"user:cli"}


BAD_JOB_PARAMETERS = [
    ("{not json", "--params is not valid JSON"),
    ('["LAN-01"]', "--params must be a JSON object, got list"),
    (json.dumps({k: v for k, v in params().items() if k != "alarm_ids"}), "'alarm_ids'"),
    (json.dumps(params(alarm_ids="101")), "parameter 'alarm_ids': '101' is not of type 'array'"),
    (json.dumps(params(start=5)), "parameter 'start': 5 is not of type 'string'"),
    (json.dumps(params(priority=1)), "'priority' was unexpected"),
    (
        json.dumps(params(start="2024-01-02 00:00:00", end="2024-01-01 00:00:00")),
        "start must be before end",
    ),
    (json.dumps(params(start="2024-01-01 00:00:00", end="2024-01-01T00:00:00Z")), "before end"),
    (json.dumps(params(end="next tuesday")), "parameter 'end': malformed date 'next tuesday'"),
    (json.dumps(params(start="2024-02-30 00:00:00")), "malformed date '2024-02-30 00:00:00'"),
    (
        json.dumps(params(object_names=["LAN-01", "LAN-77", "ghost"])),
        "unknown object names: 'LAN-77', 'ghost'",
    ),
    (json.dumps(params(alarm_ids=[101, 555, 556])), "unknown alarm ids: 555, 556"),
]


def test_job_create_rejects_bad_parameters_and_writes_nothing(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    existing = create_job(perfdb, ALARM_CALC, params())
    before = snapshot(perfdb)

    for text, message in BAD_JOB_PARAMETERS:
        cli.rejects("job", "create", "--type", ALARM_CALC, "--params", text, naming=message)
        cli.rejects(
            "job", "create", "--type", ALARM_CALC, "--params", text, "--queue", naming=message
        )
    cli.rejects(
        "job", "create", "--type", "Power Curve", "--params", json.dumps(params()),
        naming="unknown job type 'Power Curve' (known: 'Alarm Calculation', 'Data Import', ",
    )  # fmt: skip
    cli.rejects("job", "create", "--type", ALARM_CALC, naming="--params")

    assert snapshot(perfdb) == before
    assert perfdb.queue.get_job(existing.id) == existing


# --- job queue, list, show, update, delete ---------------------------------------------------


def test_job_queue_moves_created_to_queued(cli: Cli, perfdb: PerfDB, fleet: dict[str, int]) -> None:
    job = create_job(perfdb, ALARM_CALC, params())

    result = cli.ok("job", "queue", str(job.id))

    assert result.out == f"job {job.id} is Queued (queued 1 time)\n"
    assert perfdb.queue.get_job(job.id).state == JobState.QUEUED
    assert perfdb.queue.history(job.id)[-1].actor == "user:cli"


def test_job_queue_and_delete_refuse_a_running_job(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    job_id = running_job(perfdb, fleet)
    queued = create_job(perfdb, ALARM_CALC, params(), queue=True)
    before = snapshot(perfdb)

    cli.rejects("job", "queue", str(job_id), naming=f"job {job_id} is Running")
    cli.rejects("job", "queue", str(queued.id), naming=f"job {queued.id} is Queued")
    cli.rejects("job", "delete", str(job_id), naming=f"job {job_id} is Running")

    assert snapshot(perfdb) == before


@pytest.mark.parametrize("command", ["queue", "show", "delete", "update"])
def test_job_commands_reject_unknown_and_malformed_ids(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int], command: str
) -> None:
    create_job(perfdb, ALARM_CALC, params())
    before = snapshot(perfdb)
    extra = ["--description", "d"] if command == "update" else []

    cli.rejects("job", command, "4711", *extra, naming="job 4711 does not exist")
    cli.rejects(
        "job", command, "abc", *extra, naming="job id must be a positive integer, got 'abc'"
    )
    cli.rejects("job", command, "0", *extra, naming="job id must be a positive integer, got '0'")
    cli.rejects("job", command, "1.5", *extra, naming="got '1.5'")

    assert snapshot(perfdb) == before


def test_job_list_filters_and_prints_json(cli: Cli, perfdb: PerfDB, fleet: dict[str, int]) -> None:
    created = create_job(perfdb, ALARM_CALC, params(), description="first")
    queued = create_job(perfdb, ALARM_CALC, params(), description="second", queue=True)
    running = running_job(perfdb, fleet)

    table = cli.ok("job", "list").out.splitlines()
    assert table[0].split() == [
        "id", "type", "state", "created", "finished", "description", "comment",
    ]  # fmt: skip
    assert [line.split()[0] for line in table[1:]] == [
        str(created.id),
        str(queued.id),
        str(running),
    ]
    assert "Queued" in table[2] and "second" in table[2]

    listed = cli.ok("job", "list", "--json").json
    assert [(job["id"], job["state"]) for job in listed] == [
        (created.id, "Created"),
        (queued.id, "Queued"),
        (running, "Running"),
    ]
    assert listed[0]["type"] == ALARM_CALC and listed[0]["parameters"] == params()
    utc(listed[0]["created"])
    assert [job["id"] for job in cli.ok("job", "list", "--state", "queued", "--json").json] == [
        queued.id
    ]
    assert cli.ok("job", "list", "--state", "Failed", "--json").json == []
    cli.rejects("job", "list", "--state", "Done", naming="unknown state 'Done'")


@pytest.mark.usefixtures("fleet")
def test_job_list_pages_forward_and_shows_the_newest(cli: Cli, perfdb: PerfDB) -> None:
    ids = [
        create_job(perfdb, ALARM_CALC, params(), queue=n % 2 == 0).id for n in range(5)
    ]  # queued: ids[0], ids[2], ids[4]

    def listed(*flags: str) -> list[int]:
        return [job["id"] for job in cli.ok("job", "list", *flags, "--json").json]

    assert listed("--limit", "2") == ids[:2]
    assert listed("--after", str(ids[1]), "--limit", "2") == ids[2:4]
    assert listed("--after", str(ids[3])) == ids[4:]
    assert listed("--last", "2") == ids[3:]  # the newest, still in id order
    assert listed("--last", "10") == ids
    assert listed("--state", "queued", "--last", "2") == [ids[2], ids[4]]
    assert listed("--state", "queued", "--after", str(ids[0]), "--limit", "1") == [ids[2]]
    table = cli.ok("job", "list", "--last", "1").out.splitlines()
    assert [line.split()[0] for line in table[1:]] == [str(ids[4])]
    cli.rejects("job", "list", "--limit", "0", naming="--limit must be a positive integer")
    cli.rejects("job", "list", "--last", "x", naming="--last must be a positive integer")
    cli.rejects("job", "list", "--after", "-3", naming="--after must be a positive integer")
    cli.rejects("job", "list", "--limit", "1", "--last", "1", naming="not allowed with argument")


def test_job_show_prints_the_job_and_its_steps(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    job_id = running_job(perfdb, fleet)
    steps = perfdb.queue.get_steps(job_id)
    perfdb.queue.start_step(steps[0].id, "run-1")
    perfdb.queue.finish_step(steps[0].id, "no data; 'LAN-01'", run_id="run-1")

    shown = cli.ok("job", "show", str(job_id), "--json").json

    required = {
        "id", "type", "state", "parameters", "description", "comment",
        "created", "started", "finished", "last_state_change", "steps",
    }  # fmt: skip
    assert required <= set(shown)
    assert (shown["id"], shown["type"], shown["state"]) == (job_id, ALARM_CALC, "Running")
    assert (shown["parameters"], shown["description"], shown["comment"]) == (
        params(),
        "running",
        None,
    )
    assert shown["finished"] is None
    assert utc(shown["created"]) <= utc(shown["started"]) <= utc(shown["last_state_change"])
    assert [
        {key: step[key] for key in ("id", "object", "alarm_id", "state", "comment")}
        for step in shown["steps"]
    ] == [
        {
            "id": steps[0].id,
            "object": "LAN-01",
            "alarm_id": 101,
            "state": "Failed",
            "comment": "no data; 'LAN-01'",
        },
        {
            "id": steps[1].id,
            "object": "LAN-02",
            "alarm_id": 101,
            "state": "Created",
            "comment": None,
        },
    ]

    text = cli.ok("job", "show", str(job_id)).out
    assert text.startswith(f"job {job_id}: Alarm Calculation [Running]\n")
    assert "description: running" in text
    [parameters_line] = [line for line in text.splitlines() if "parameters:" in line]
    assert json.loads(parameters_line.split("parameters:", 1)[1]) == params()
    assert "no data; 'LAN-01'" in text


def test_job_update_changes_a_created_job_only(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    job = create_job(perfdb, ALARM_CALC, params())
    changed = params(object_names=["LAN-02"])

    assert cli.ok("job", "update", str(job.id), "--params", json.dumps(changed)).out == (
        f"job {job.id} updated\n"
    )
    cli.ok("job", "update", str(job.id), "--description", "edited")
    updated = perfdb.queue.get_job(job.id)
    assert (updated.parameters, updated.description) == (changed, "edited")

    before = snapshot(perfdb)
    cli.rejects(
        "job", "update", str(job.id), "--params", json.dumps(params(object_names=["nope"])),
        naming="unknown object names: 'nope'",
    )  # fmt: skip
    cli.rejects("job", "update", str(job.id), naming="nothing to update")
    running = running_job(perfdb, fleet)
    before = snapshot(perfdb)
    cli.rejects(
        "job", "update", str(running), "--description", "x", naming=f"job {running} is Running"
    )
    assert snapshot(perfdb) == before


def test_job_delete_removes_the_job(cli: Cli, perfdb: PerfDB, fleet: dict[str, int]) -> None:
    keep = create_job(perfdb, ALARM_CALC, params())
    gone = create_job(perfdb, ALARM_CALC, params(), queue=True)

    assert cli.ok("job", "delete", str(gone.id)).out == f"job {gone.id} deleted\n"

    assert [job.id for job in perfdb.queue.list_jobs()] == [keep.id]
    assert perfdb.queue.history(gone.id) == []


# --- names are data, not SQL -----------------------------------------------------------------


def test_names_with_quotes_and_sql_are_stored_and_shown_literally(
    cli: Cli, perfdb: PerfDB, tmp_path: Path
) -> None:
    feature = 'temp "inner"; DELETE FROM features'
    path = write_csv(
        tmp_path,
        "nasty.csv",
        "object,feature,timestamp,value",
        f'"{NASTY}","{feature.replace(chr(34), chr(34) * 2)}",2024-01-01T00:00:00Z,1',
    )
    cli.ok("features", "import", path)
    cli.ok(
        "alarms", "define", "--id", "1", "--name", "'; DROP TABLE alarm_definitions; --",
        "--feature", feature, "--operator", ">", "--threshold", "0",
    )  # fmt: skip
    parameters = params(object_names=[NASTY], alarm_ids=[1])
    description = 'Robert\'); DROP TABLE job_instances;-- "quoted"'

    job_id = int(
        cli.ok(
            "job", "create", "--type", ALARM_CALC, "--params", json.dumps(parameters),
            "--description", description,
        ).out
    )  # fmt: skip

    assert perfdb.catalog.list_objects() == [NASTY]
    assert perfdb.catalog.get_feature(feature).name == feature
    assert perfdb.catalog.alarms([1])[1].name == "'; DROP TABLE alarm_definitions; --"
    shown = cli.ok("job", "show", str(job_id), "--json").json
    assert (shown["parameters"], shown["description"]) == (parameters, description)
    text = cli.ok("job", "show", str(job_id)).out
    assert description in text and NASTY in text
    assert snapshot(perfdb)["job_instances"] == 1


# --- failures that are not the user's ----------------------------------------------------------


def test_an_unreachable_database_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cli = Cli(DEAD_DB, capsys)
    path = write_csv(
        tmp_path, "ok.csv", "object,feature,timestamp,value", "A,p,2024-01-01T00:00:00Z,1"
    )
    commands = [
        ("db", "upgrade"),
        ("job", "list", "--json"),
        ("job", "show", "1"),
        ("job", "create", "--type", ALARM_CALC, "--params", json.dumps(params())),
        ("features", "import", path),
        ("alarms", "list"),
    ]
    for command in commands:
        result = cli(*command)
        assert result.code == 1, (command, result)
        assert result.out == ""
        assert result.err.count("\n") == 1, (command, result.err)
        assert result.err.startswith(
            "jobs-pipeline: error: cannot connect to the performance database "
            "postgresql+psycopg://root@127.0.0.1:1/nothing: "
        ), result.err


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "jobs-pipeline"
    url = f"sqlite:///{tmp_path / 'perfdb.sqlite'}"

    upgraded = subprocess.run(
        [str(script), "--db", url, "db", "upgrade"], capture_output=True, text=True, timeout=120
    )
    missing = subprocess.run(
        [str(script), "--db", url, "job", "show", "1"], capture_output=True, text=True, timeout=120
    )

    assert (upgraded.returncode, upgraded.stderr) == (0, "")
    assert upgraded.stdout.rstrip().endswith(f"created the schema (revision {head_revision()})")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        2,
        "",
        "jobs-pipeline: error: job 1 does not exist\n",
    )


# --- cancel ----------------------------------------------------------------------------------


def test_job_cancel_fails_a_queued_job_at_once_and_cancels_its_waiting_run(
    cli: Cli,
    perfdb: PerfDB,
    fleet: dict[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dagster as dg

    from jobs_pipeline.orchestration.sensors import run_tags
    from jobs_pipeline_tests.orchestration.perfdb_job_config import plan_config
    from jobs_pipeline_tests.orchestration.processes import make_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(make_dagster_home(tmp_path / "dagster_home")))
    monkeypatch.delenv("DAGSTER_PG_URL", raising=False)
    queued = create_job(perfdb, ALARM_CALC, params(), queue=True)
    with dg.DagsterInstance.get() as instance:
        # The queue sensor's run, created and not started yet (a queued one needs a code
        # location to come from; both are canceled the same way).
        run = instance.add_run(
            dg.DagsterRun(
                job_name="perfdb_job", run_config=plan_config(queued.id), tags=run_tags(queued)
            )
        )

        result = cli.ok("job", "cancel", str(queued.id), "--as", "ana")

        assert result.out == (
            f"job {queued.id} is Failed (canceled by ana)\nrun {run.run_id} canceled\n"
        )
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELED
    job = perfdb.queue.get_job(queued.id)
    assert (job.state, job.comment) == (JobState.FAILED, "canceled by ana")
    cli.ok("job", "queue", str(queued.id))  # and it can be queued again


def test_job_cancel_of_a_running_job_records_the_request(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    job_id = running_job(perfdb, fleet)

    result = cli.ok("job", "cancel", str(job_id))

    assert "cancel requested" in result.out
    job = perfdb.queue.get_job(job_id)
    assert (job.state, job.cancel_requested_by) == (JobState.RUNNING, "cli")
    shown = cli.ok("job", "show", str(job_id))
    assert "cancel requested by cli" in shown.out
    data = cli.ok("job", "show", str(job_id), "--json").json
    assert data["cancel_requested_by"] == "cli" and data["cancel_requested"] is not None


def test_job_cancel_refuses_unknown_and_ended_jobs(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    ended = create_job(perfdb, ALARM_CALC, params(), queue=True)
    perfdb.queue.cancel_job(ended.id)
    before = snapshot(perfdb)

    cli.rejects("job", "cancel", "4711", naming="job 4711 does not exist")
    cli.rejects("job", "cancel", str(ended.id), naming=f"job {ended.id} is Failed: nothing to")
    cli.rejects("job", "cancel", "x", naming="job id must be a positive integer, got 'x'")

    assert snapshot(perfdb) == before


def test_job_show_warns_about_a_job_no_run_has_claimed(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    queued = create_job(perfdb, ALARM_CALC, params(), queue=True)
    assert "warning" not in cli.ok("job", "show", str(queued.id)).out

    monkeypatch.setenv("JOBS_PIPELINE_QUEUED_WARNING_SECONDS", "0.001")
    shown = cli.ok("job", "show", str(queued.id)).out
    assert "no run has claimed it: is the Dagster daemon (queue sensor) running?" in shown


def test_interrupting_job_run_off_a_terminal_leaves_the_run_going_and_says_so(
    perfdb: PerfDB, fleet: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs_pipeline.cli import _interrupted_run

    job_id = running_job(perfdb, fleet)

    _interrupted_run(perfdb, job_id)

    err = capsys.readouterr().err
    assert f"stopped waiting; job {job_id} goes on (Running)" in err
    assert f"jobs-pipeline job cancel {job_id}" in err
    assert perfdb.queue.get_job(job_id).cancel_requested is None


def test_a_sqlite_file_that_does_not_exist_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "typo.sqlite"
    cli = Cli(f"sqlite:///{path}", capsys)

    result = cli("alarms", "list")

    assert result.code == 1
    assert result.err == (
        f"jobs-pipeline: error: database sqlite:///{path} has no schema: "
        "run 'jobs-pipeline db upgrade'\n"
    )
    assert not path.exists()


def test_db_upgrade_says_which_revision_it_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs_pipeline.perfdb.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    old = PerfDB.connect(url)
    upgrade(old.engine, "0001")
    old.dispose()

    result = Cli(url, capsys).ok("db", "upgrade")

    assert result.out.rstrip().endswith(f"upgraded from revision 0001 to {head_revision()}")


def test_filters_naming_nothing_are_refused(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    cli.rejects("alarms", "list", "--object", "NOPE", naming="unknown object names: 'NOPE'")
    cli.rejects("alarms", "list", "--alarm", "999", naming="unknown alarm ids: 999")
    cli.rejects("job", "list", "--state", "done", naming="unknown state 'done'")
    cli.rejects("job", "list", "--type", "Nope", naming="unknown job type 'Nope' (known: ")


def test_job_types_prints_each_type_with_its_schema(cli: Cli) -> None:
    (alarm_calc,) = [t for t in cli.ok("job", "types", "--json").json if t["name"] == ALARM_CALC]
    assert alarm_calc["parameters_schema"]["required"] == [
        "object_names",
        "alarm_ids",
        "start",
        "end",
    ]
    text = cli.ok("job", "types").out
    assert text.startswith(f"{ALARM_CALC}: ")
    assert "  start (string, required): " in text


def test_help_lists_choices_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    def help_of(*args: str) -> str:
        with pytest.raises(SystemExit):
            main([*args, "--help"])
        return " ".join(capsys.readouterr().out.split())  # argparse wraps lines

    assert f"one of '{ALARM_CALC}'" in help_of("job", "create")
    assert "job types --json" in help_of("job", "create")
    assert "Created, Queued, Running, Finished, Failed" in help_of("job", "list")
    assert "> >= < <= == !=" in help_of("alarms", "define")
    assert "(default: 14)" in help_of("demo", "seed")


def test_job_create_reuse_queues_the_existing_job_again(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    arguments = ("job", "create", "--type", ALARM_CALC, "--params", json.dumps(params()))
    first = int(cli.ok(*arguments, "--description", "demo", "--queue", "--reuse").out)
    # Still Queued: the same job, left as it is.
    assert int(cli.ok(*arguments, "--description", "demo", "--queue", "--reuse").out) == first
    perfdb.queue.cancel_job(first)

    again = int(cli.ok(*arguments, "--description", "demo", "--queue", "--reuse").out)

    assert again == first
    job = perfdb.queue.get_job(first)
    assert (job.state, job.queue_count) == (JobState.QUEUED, 2)
    assert [j.id for j in perfdb.queue.list_jobs()] == [first]
    other = params(end="2024-01-03 00:00:00")
    cli.rejects(
        "job", "create", "--type", ALARM_CALC, "--params", json.dumps(other),
        "--description", "demo", "--reuse", naming="exists with other parameters",
    )  # fmt: skip


def test_demo_seed_overwrites_nothing_that_is_there(
    cli: Cli, perfdb: PerfDB, tmp_path: Path
) -> None:
    # A real LAN-01 with its own data, and a real alarm 1001.
    cli.ok(
        "features",
        "import",
        write_csv(tmp_path, "real.csv", "object,feature,timestamp,value", "LAN-01,rotor_speed,"
        "2025-12-31T23:50:00Z,12.5"),
    )  # fmt: skip
    cli.ok(
        "alarms", "define", "--id", "1001", "--name", "Mine", "--feature", "rotor_speed",
        "--operator", ">", "--threshold", "20",
    )  # fmt: skip
    mine = snapshot(perfdb)

    first = cli.ok("demo", "seed", "--objects", "2", "--days", "1")
    second = cli.ok("demo", "seed", "--objects", "2", "--days", "1")

    assert "kept the values already stored for LAN-01" in first.out
    assert "kept the alarm definitions 1001 as they are" in first.out
    assert "kept the values already stored for LAN-01, LAN-02" in second.out
    lan01 = perfdb.catalog.object_ids(["LAN-01"])["LAN-01"]
    with perfdb.engine.connect() as connection:
        assert (
            connection.execute(
                sa.text("SELECT count(*) FROM feature_values WHERE object_id = :id"), {"id": lan01}
            ).scalar_one()
            == 1
        )
    assert perfdb.catalog.alarms([1001])[1001].name == "Mine"
    assert snapshot(perfdb)["feature_values"] > mine["feature_values"]  # LAN-02 was seeded


def test_alarms_plot_draws_the_latest_jobs_period_or_the_one_given(
    cli: Cli, perfdb: PerfDB, tmp_path: Path
) -> None:
    cli.ok("demo", "seed", "--objects", "1", "--days", "2")
    output = tmp_path / "plot.png"
    cli.rejects(
        "alarms", "plot", "--object", "LAN-01", "--alarm", "1001", "-o", str(output),
        naming="no job has calculated alarm 1001 for 'LAN-01': give --start and --end",
    )  # fmt: skip
    cli.rejects(
        "alarms", "plot", "--object", "NOPE", "--alarm", "1001", "-o", str(output),
        naming="unknown object names: 'NOPE'",
    )  # fmt: skip
    assert not output.exists()

    given = cli.ok(
        "alarms", "plot", "--object", "LAN-01", "--alarm", "1001", "-o", str(output),
        "--start", "2025-12-30T00:00:00Z", "--end", "2025-12-31T00:00:00Z",
    )  # fmt: skip

    assert "2025-12-30 00:00:00 to 2025-12-31 00:00:00, 144 samples" in given.out
    assert output.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    job = int(
        cli.ok(
            "job", "create", "--type", ALARM_CALC, "--params",
            json.dumps({"object_names": ["LAN-01"], "alarm_ids": [1001],
                        "start": "2025-12-31 00:00:00", "end": "2026-01-01 00:00:00"}),
        ).out
    )  # fmt: skip
    assert JobAlarmCalc(job, perfdb=perfdb).run() == []
    latest = cli.ok("alarms", "plot", "--object", "LAN-01", "--alarm", "1001", "-o", str(output))
    assert "2025-12-31 00:00:00 to 2026-01-01 00:00:00" in latest.out


# --- names: objects and alarm definitions ------------------------------------------------------


def test_objects_and_alarm_definitions_are_listed_by_name(cli: Cli, fleet: dict[str, int]) -> None:
    objects = cli.ok("objects", "list").out.splitlines()
    assert objects[0].strip() == "object"
    assert sorted(line.rstrip() for line in objects[1:-1]) == sorted(["LAN-01", "LAN-02", NASTY])
    assert objects[-1] == "3 objects"
    assert sorted(o["name"] for o in cli.ok("objects", "list", "--json").json) == sorted(
        ["LAN-01", "LAN-02", NASTY]
    )

    assert cli.ok("alarms", "definitions", "--json").json == [
        {
            "id": 101,
            "name": "High power",
            "feature": "active_power",
            "operator": ">",
            "threshold": 2000.0,
            "clear_threshold": None,
            "min_duration_seconds": 0.0,
        },
        {
            "id": 102,
            "name": "Low power",
            "feature": "active_power",
            "operator": "<",
            "threshold": -10.0,
            "clear_threshold": None,
            "min_duration_seconds": 0.0,
        },
    ]
    table = cli.ok("alarms", "definitions").out.splitlines()
    assert table[0].split() == ["id", "name", "rule", "clear", "min", "duration"]
    assert table[1].split()[:6] == ["101", "High", "power", "active_power", ">", "2000"]
    assert table[-1] == "2 alarm definitions"


def test_every_failure_is_one_line_in_one_style(cli: Cli) -> None:
    bad_argument = cli.rejects("job", "create", "--type", ALARM_CALC, "--params", "[1]",
                               naming="--params")  # fmt: skip
    assert bad_argument.err.startswith("jobs-pipeline: error: job create: argument --params:")
    unknown = cli.rejects("job", "show", "999", naming="job 999 does not exist")
    assert unknown.err == "jobs-pipeline: error: job 999 does not exist\n"
