"""`jobs-pipeline schedule ...` and `job list --schedule`: outputs, `--json`, exit codes, and bad
input that exits 2 with one line naming the problem and writes nothing."""

from __future__ import annotations

import json

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline_tests.cli_runner import Cli

ALARM_CALC = "Alarm Calculation"
PARAMS = json.dumps({"object_names": ["WT-01"], "alarm_ids": [7001]})


def create(cli: Cli, *extra: str) -> dict:
    return cli.ok(
        "schedule",
        "create",
        "--name",
        "fleet-daily",
        "--type",
        ALARM_CALC,
        "--params",
        PARAMS,
        "--every",
        "day",
        "--timezone",
        "Europe/Berlin",
        "--start",
        "2024-10-26",
        "--json",
        *extra,
    ).json


def test_create_show_backfill_pause_resume_delete(cli: Cli, perfdb: PerfDB) -> None:
    created = create(cli, "--delay", "2h", "--catch-up", "5", "--description", "nightly")
    assert {k: created[k] for k in ("every", "timezone", "delay", "catch_up", "enabled")} == {
        "every": "day",
        "timezone": "Europe/Berlin",
        "delay": "2h",
        "catch_up": 5,
        "enabled": True,
    }
    assert created["first_start"] == "2024-10-25T22:00:00+00:00"
    # October 26 ends at 22:00 UTC; its job is due two hours later.
    assert created["next_due"] == "2024-10-27T00:00:00+00:00"

    backfill = cli.ok(
        "schedule",
        "backfill",
        "fleet-daily",
        "--from",
        "2024-10-26",
        "--to",
        "2024-10-28",
        "--json",
    ).json
    assert backfill["existing"] == 0 and backfill["not_ended"] == 0
    # The second day is the 25-hour one.
    assert [(p["start"], p["end"]) for p in backfill["created"]] == [
        ("2024-10-25T22:00:00+00:00", "2024-10-26T22:00:00+00:00"),
        ("2024-10-26T22:00:00+00:00", "2024-10-27T23:00:00+00:00"),
    ]
    again = cli.ok(
        "schedule", "backfill", "fleet-daily", "--from", "2024-10-26", "--to", "2024-10-28"
    )
    assert (
        again.out == "0 jobs created, 2 periods created before, 0 not ended yet "
        "(left to the scheduler)\n"
    )

    jobs = cli.ok("job", "list", "--schedule", "fleet-daily", "--json").json
    assert [(j["schedule"], j["state"], j["description"]) for j in jobs] == [
        ("fleet-daily", "Queued", "nightly")
    ] * 2
    assert jobs[1]["parameters"] == {
        "object_names": ["WT-01"],
        "alarm_ids": [7001],
        "start": "2024-10-26T22:00:00Z",
        "end": "2024-10-27T23:00:00Z",
    }
    newest = cli.ok("job", "list", "--schedule", "fleet-daily", "--last", "1", "--json").json
    assert [j["id"] for j in newest] == [jobs[1]["id"]]
    after_first = ("--after", str(jobs[0]["id"]), "--limit", "5", "--json")
    paged = cli.ok("job", "list", "--schedule", "fleet-daily", *after_first).json
    assert [j["id"] for j in paged] == [jobs[1]["id"]]
    shown = cli.ok("job", "show", str(jobs[0]["id"]), "--json").json
    assert shown["schedule"] == "fleet-daily"
    assert shown["period"] == {
        "start": "2024-10-25T22:00:00+00:00",
        "end": "2024-10-26T22:00:00+00:00",
    }

    paused = cli.ok("schedule", "pause", "fleet-daily", "--comment", "turbines serviced", "--json")
    assert (paused.json["enabled"], paused.json["comment"]) == (False, "turbines serviced")
    listed = cli.ok("schedule", "list", "--json").json
    assert [(s["name"], s["enabled"]) for s in listed] == [("fleet-daily", False)]
    assert cli.ok("schedule", "resume", "fleet-daily", "--json").json["comment"] is None
    show = cli.ok("schedule", "show", "fleet-daily", "--json").json
    assert [p["job_id"] for p in show["periods"]] == [j["id"] for j in jobs]
    assert "2 periods created" in cli.ok("schedule", "show", "fleet-daily").out

    assert cli.ok("schedule", "delete", "fleet-daily").out == (
        "schedule fleet-daily deleted (its jobs stay)\n"
    )
    assert cli.ok("schedule", "list", "--json").json == []
    assert len(perfdb.queue.list_jobs()) == 2


def test_bad_input_exits_2_naming_the_problem_and_writes_nothing(cli: Cli, perfdb: PerfDB) -> None:
    create(cli)
    base = ["schedule", "create", "--name", "other", "--type", ALARM_CALC, "--params", PARAMS]
    cases = [
        ([*base, "--every", "7min"], "every must be Nmin with N dividing 60"),
        ([*base, "--every", "day", "--timezone", "Berlin"], "unknown time zone 'Berlin'"),
        ([*base, "--every", "day", "--delay", "2 hours"], "argument --delay"),
        ([*base, "--every", "day", "--catch-up", "-1"], "--catch-up must be a whole number"),
        ([*base, "--every", "day", "--start", "soon"], "not an ISO 8601 time: 'soon'"),
        (
            [
                *base,
                "--every",
                "hour",
                "--timezone",
                "Europe/Berlin",
                "--start",
                "2024-03-31 02:30",
            ],
            "does not exist in Europe/Berlin",
        ),
        (
            [
                "schedule",
                "create",
                "--name",
                "other",
                "--type",
                ALARM_CALC,
                "--params",
                '{"object_names": ["A"]}',
                "--every",
                "day",
            ],
            "'alarm_ids' is a required property",
        ),
        (
            [
                "schedule",
                "create",
                "--name",
                "other",
                "--type",
                ALARM_CALC,
                "--params",
                '{"object_names": ["A"], "alarm_ids": [1], "start": "2024-01-01"}',
                "--every",
                "day",
            ],
            "must not contain start",
        ),
        (
            [
                "schedule",
                "create",
                "--name",
                "fleet-daily",
                "--type",
                ALARM_CALC,
                "--params",
                PARAMS,
                "--every",
                "day",
            ],
            "schedule 'fleet-daily' exists already",
        ),
        (["schedule", "show", "nope"], "schedule 'nope' does not exist"),
        (["schedule", "pause", "nope"], "schedule 'nope' does not exist"),
        (["schedule", "delete", "nope"], "schedule 'nope' does not exist"),
        (
            ["schedule", "backfill", "fleet-daily", "--from", "2024-11-02", "--to", "2024-11-01"],
            "must be after --from",
        ),
        (["job", "list", "--schedule", "nope"], "schedule 'nope' does not exist"),
    ]
    for args, naming in cases:
        cli.rejects(*args, naming=naming)
    assert [s.name for s in perfdb.schedules.all()] == ["fleet-daily"]
    assert perfdb.schedules.get("fleet-daily").enabled is True
    assert perfdb.queue.list_jobs() == []
