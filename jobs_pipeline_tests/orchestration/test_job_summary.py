"""The job summary of a run page fits the job type, on SQLite and PostgreSQL: a Feature
Calculation lists its steps with object, feature and rows written (no occurrence table), a Data
Import its files, steps about no object included in the counts."""

from __future__ import annotations

from pathlib import Path

from jobs_pipeline.jobs import JobDataImport, JobFeatureCalc, create_job
from jobs_pipeline.orchestration.summary import job_summary
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline_tests.jobs.data_import_files import DATA_IMPORT, good_and_bad_files
from jobs_pipeline_tests.orchestration.feature_job_runs import feature_job, steps_by_key
from jobs_pipeline_tests.power_chain import seed_power_chain


def markdown(metadata: dict[str, object], name: str) -> str:
    return str(getattr(metadata[name], "md_str", metadata[name]))


def test_a_feature_calculation_summary_lists_steps_with_rows_written(perfdb: PerfDB) -> None:
    period = seed_power_chain(perfdb, ["A", "B", "C"], 30, without_data="C")
    job_id = feature_job(perfdb, ["A", "B", "C"], period)
    JobFeatureCalc(job_id, perfdb=perfdb).run()
    steps = steps_by_key(perfdb, job_id)

    summary = job_summary(perfdb, job_id)

    assert (summary["steps_finished"], summary["steps_failed"]) == (4, 2)
    assert "occurrences" not in summary and "fleet" not in summary
    assert summary["rows_total"] == 4 * 30
    lines = markdown(summary, "steps").splitlines()
    assert lines[:2] == [
        "| step | object | feature | state | rows |",
        "| ---: | --- | --- | --- | ---: |",
    ]
    expected = [
        (steps[(name, feature)].id, name, feature, state, rows)
        for feature in ("power", "doubled")
        for name, state, rows in (("A", "Finished", 30), ("B", "Finished", 30), ("C", "Failed", ""))
    ]
    assert lines[2:] == [
        f"| {step_id} | {name} | {feature} | {state} | {rows} |"
        for step_id, name, feature, state, rows in expected
    ]


def test_a_data_import_summary_counts_and_lists_its_files(perfdb: PerfDB, tmp_path: Path) -> None:
    good, bad = good_and_bad_files(tmp_path)
    job = create_job(perfdb, DATA_IMPORT, {"paths": [good, bad]})
    runner = JobDataImport(job.id, perfdb=perfdb)
    good_step, bad_step = runner.steps.values()
    runner.run()

    summary = job_summary(perfdb, job.id, runner.job.run_id)

    # Steps about no object count like any other (they were left out before).
    assert (summary["steps_finished"], summary["steps_failed"]) == (1, 1)
    assert summary["steps_this_run"] == 2
    assert summary["rows_total"] == 6
    assert "occurrences" not in summary
    assert markdown(summary, "steps").splitlines() == [
        "| step | file | state | rows |",
        "| ---: | --- | --- | ---: |",
        f"| {good_step.id} | {good} | Finished | 6 |",
        f"| {bad_step.id} | {bad} | Failed |  |",
    ]
    assert f"| {bad_step.id} |  |  | Failed | {bad}: line 2" in markdown(
        summary, "steps_not_finished"
    )
