"""`JobDataImport`: one step per file, each all or nothing, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs_pipeline.jobs import JobDataImport, create_job
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.errors import InvalidParameters
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.jobs.data_import_files import DATA_IMPORT, csv_file


def test_each_file_is_a_step_and_a_bad_last_line_writes_nothing_of_its_file(
    perfdb: PerfDB, tmp_path: Path
) -> None:
    good = csv_file(
        tmp_path / "good.csv",
        [
            f"INV-01,ac_power,2024-01-01T00:{minute:02d}:00Z,{minute}.5"
            for minute in range(0, 60, 10)
        ],
    )
    bad_lines = [
        f"INV-02,ac_power,2024-01-01T00:{minute:02d}:00Z,1.0" for minute in range(0, 50, 10)
    ]
    bad = csv_file(tmp_path / "bad.csv", [*bad_lines, "INV-02,ac_power,2024-01-01T00:50:00Z,x"])
    job = create_job(perfdb, DATA_IMPORT, {"paths": [good, bad], "sampling_period": 600})
    runner = JobDataImport(job.id, perfdb=perfdb)
    good_step, bad_step = runner.steps.values()
    assert (good_step.object_id, good_step.feature_id) == (None, None)

    assert runner.run() == [bad_step.id]

    steps = {step.id: step for step in perfdb.queue.get_steps(job.id)}
    assert steps[good_step.id].state == JobState.FINISHED
    details = steps[good_step.id].details or {}
    assert (details["file"], details["rows"], details["new_values"]) == (good, 6, 6)
    assert details["rows_per_second"] > 0
    failed = steps[bad_step.id]
    assert failed.state == JobState.FAILED
    assert failed.comment.startswith(f"{bad}: line 7: ")
    # The good file is stored whole, nothing of the bad one (five good lines before its last).
    assert perfdb.values.count() == 6
    assert perfdb.values.objects_with_values(["INV-01", "INV-02"]) == ["INV-01"]
    assert perfdb.catalog.get_feature("ac_power").sampling_period.total_seconds() == 600

    # Fixed and requeued: only the failed file's step runs again.
    csv_file(tmp_path / "bad.csv", [*bad_lines, "INV-02,ac_power,2024-01-01T00:50:00Z,2.0"])
    perfdb.queue.queue_job(job.id)
    assert JobDataImport(job.id, perfdb=perfdb).run() == []
    after = {step.id: step for step in perfdb.queue.get_steps(job.id)}
    assert (after[good_step.id].attempts, after[bad_step.id].attempts) == (1, 2)
    assert perfdb.values.count() == 12
    assert perfdb.queue.get_job(job.id).state == JobState.FINISHED
    # A frontend's view of the steps shows steps about no object too.
    with perfdb.engine.connect() as connection:
        overview = connection.execute(
            sa.text(
                "SELECT step_id, object, state FROM job_step_overview "
                "WHERE job_id = :job ORDER BY position"
            ),
            {"job": job.id},
        ).all()
    assert [tuple(row) for row in overview] == [
        (good_step.id, None, "Finished"),
        (bad_step.id, None, "Finished"),
    ]


def test_files_must_exist_when_the_job_is_created(perfdb: PerfDB, tmp_path: Path) -> None:
    with pytest.raises(InvalidParameters, match=r"no such file: '/nowhere/x\.csv'"):
        create_job(perfdb, DATA_IMPORT, {"paths": ["/nowhere/x.csv"]})
    with pytest.raises(InvalidParameters, match="sampling_period"):
        create_job(perfdb, DATA_IMPORT, {"paths": [str(tmp_path)], "sampling_period": 0})
    assert perfdb.queue.list_jobs() == []
