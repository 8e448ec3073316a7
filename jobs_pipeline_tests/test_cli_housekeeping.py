"""`jobs-pipeline housekeeping`: what it prints (text and `--json`), that `--dry-run` changes
nothing, that the keep times come from the flags or the settings, and bad input exiting 2 with
one line. The Dagster instance is a fresh `DAGSTER_HOME` with the repository's `dagster.yaml`."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.records import NewStep
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.cli_fleet import params, snapshot
from jobs_pipeline_tests.cli_runner import Cli


@pytest.fixture
def cli(
    perfdb_url: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Cli:
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    for name in ("JOBS_PIPELINE_KEEP_FINISHED", "JOBS_PIPELINE_KEEP_FAILED", "DAGSTER_PG_URL"):
        monkeypatch.delenv(name, raising=False)
    return Cli(perfdb_url, capsys)


def ended_job(perfdb: PerfDB, fleet: dict[str, int], *, fail: bool) -> int:
    """A job with two steps, Finished or Failed through the state machine."""
    job = perfdb.queue.create_job("Alarm Calculation", params(), queue=True)
    steps = perfdb.queue.create_steps(
        job.id, [NewStep(object_id=fleet[name], alarm_id=101) for name in ("LAN-01", "LAN-02")]
    )
    perfdb.queue.claim_job(job.id, "run-1")
    for step in steps:
        perfdb.queue.start_step(step.id, "run-1")
        perfdb.queue.finish_step(step.id, "boom" if fail else None, run_id="run-1")
    return job.id


def test_dry_run_prints_what_would_go_and_changes_nothing(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int]
) -> None:
    finished = ended_job(perfdb, fleet, fail=False)
    ended_job(perfdb, fleet, fail=True)
    before = snapshot(perfdb)

    report = cli.ok("housekeeping", "--dry-run", "--keep-finished", "0s", "--json").json

    assert snapshot(perfdb) == before
    assert perfdb.queue.get_job(finished).state == JobState.FINISHED
    assert {k: report[k] for k in ("dry_run", "jobs", "finished_jobs", "failed_jobs")} == {
        "dry_run": True,
        "jobs": 1,
        "finished_jobs": 1,
        "failed_jobs": 0,
    }
    # One history row per job move (None, Created, Queued, Running, Finished) and three per step.
    assert (report["steps"], report["history_rows"], report["runs"]) == (2, 4 + 6, 0)
    assert (report["keep_finished"], report["keep_failed"]) == ("0s", "365d")
    text = cli.ok("housekeeping", "--dry-run", "--keep-finished", "0s").out
    assert text.startswith(
        "Finished jobs kept 0s, Failed jobs 365d: would remove 1 jobs (1 Finished, 0 Failed), "
        "2 steps, 10 history rows, 0 Dagster runs, 0 events in "
    )


def test_housekeeping_removes_by_the_settings_and_the_flags(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = ended_job(perfdb, fleet, fail=False)
    failed = ended_job(perfdb, fleet, fail=True)

    assert cli.ok("housekeeping", "--json").json["jobs"] == 0  # 90 and 365 days by default
    monkeypatch.setenv("JOBS_PIPELINE_KEEP_FINISHED", "0s")
    text = cli.ok("housekeeping").out
    assert "removed 1 jobs (1 Finished, 0 Failed), 2 steps" in text
    assert [job.id for job in perfdb.queue.list_jobs()] == [failed]
    report = cli.ok("housekeeping", "--keep-failed", "1min", "--json").json
    assert report["jobs"] == 0  # the Failed job ended less than a minute ago
    report = cli.ok("housekeeping", "--keep-failed", "0s", "--json").json
    assert (report["failed_jobs"], report["steps"]) == (1, 2)
    assert perfdb.queue.list_jobs() == [] and finished != failed


def test_bad_keep_times_exit_2_with_one_line_and_remove_nothing(
    cli: Cli, perfdb: PerfDB, fleet: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    ended_job(perfdb, fleet, fail=False)
    cli.rejects("housekeeping", "--keep-finished", "soon", naming="argument --keep-finished")
    cli.rejects("housekeeping", "--keep-failed", "-1d", naming="argument --keep-failed")
    monkeypatch.setenv("JOBS_PIPELINE_KEEP_FINISHED", "ninety days")
    cli.rejects("housekeeping", naming="JOBS_PIPELINE_KEEP_FINISHED")
    assert len(perfdb.queue.list_jobs()) == 1
