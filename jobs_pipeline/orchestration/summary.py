"""A job's outcome as Dagster metadata, for every run's page, failed runs included.

Whoever finalises the job attaches it: the summary op of a successful run, the step op whose
step was the job's last (a run with a failed step skips the summary op), or the reconciler for a
run that died (as an engine event on that run).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg

from jobs_pipeline.calc import format_duration
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.occurrences import JobCell
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline.perfdb.step_dependencies import never_ran

if TYPE_CHECKING:
    from jobs_pipeline.report import FleetCell

# Tables in the UI stay readable: beyond this many rows, the rest is counted.
MAX_TABLE_ROWS = 200
# A heat map of more cells than this says little and costs a lot to draw.
MAX_PICTURE_CELLS = 2500


def _cell_text(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def job_summary(perfdb: PerfDB, job_id: int, run_id: str | None = None) -> dict[str, Any]:
    """Metadata: the job's state, description and comment, steps by state (and those this run
    executed), failed steps with their comments, occurrences per object and alarm with names,
    and a heat map of the fleet."""
    job = perfdb.queue.get_job(job_id)
    cells = perfdb.occurrences.job_cells(job_id)
    states = Counter(cell.state.label for cell in cells)
    metadata: dict[str, Any] = {
        "job_id": job_id,
        "job_state": job.state.label,
        "job_description": job.description or "",
        "job_comment": job.comment or "",
        **{f"steps_{state.lower()}": count for state, count in sorted(states.items())},
    }
    not_run = sum(1 for cell in cells if cell.state == JobState.FAILED and never_ran(cell.comment))
    if not_run:
        # Of the Failed steps, those that never started (a cancel, a failed dependency).
        metadata["steps_not_run"] = not_run
    if run_id is not None:
        # From the same rows: a summary of 10,000 steps reads them once.
        metadata["steps_this_run"] = sum(
            1
            for cell in cells
            if cell.run_id == run_id and cell.state in (JobState.FINISHED, JobState.FAILED)
        )
    failed = [cell for cell in cells if cell.state != JobState.FINISHED]
    if failed:
        lines = ["| step | object | alarm | state | comment |", "| ---: | --- | --- | --- | --- |"]
        lines += [
            f"| {cell.step_id} | {_cell_text(cell.object_name)} | {_alarm_label(cell)} "
            f"| {cell.state.label} | {_cell_text(cell.comment)} |"
            for cell in failed[:MAX_TABLE_ROWS]
        ]
        if len(failed) > MAX_TABLE_ROWS:
            lines.append(f"| | | | | ... and {len(failed) - MAX_TABLE_ROWS} more |")
        metadata["steps_not_finished"] = dg.MetadataValue.md("\n".join(lines))
    lines = [
        "| object | alarm | occurrences | alarm time |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {_cell_text(cell.object_name)} | {_alarm_label(cell)} | {cell.occurrences} "
        f"| {format_duration(timedelta(seconds=cell.alarm_seconds))} |"
        for cell in cells[:MAX_TABLE_ROWS]
    ]
    if len(cells) > MAX_TABLE_ROWS:
        lines.append(f"| ... and {len(cells) - MAX_TABLE_ROWS} more | | | |")
    metadata["occurrences"] = dg.MetadataValue.md("\n".join(lines))
    metadata["occurrences_total"] = sum(cell.occurrences for cell in cells)
    if cells and len(cells) <= MAX_PICTURE_CELLS:
        metadata["fleet"] = dg.MetadataValue.md(_fleet_picture(job_id, cells))
    return metadata


def _alarm_label(cell: JobCell) -> str:
    if cell.alarm_id is None:
        return ""
    return _cell_text(f"{cell.alarm_id} {cell.alarm_name or ''}".strip())


def fleet_cells(cells: list[JobCell]) -> list[FleetCell]:
    """The heat map's cells, from the rows the occurrences table is written from."""
    from jobs_pipeline.report import FleetCell

    return [
        FleetCell(
            object_name=cell.object_name,
            alarm_label=_alarm_label(cell) or "-",
            occurrences=cell.occurrences,
            alarm_time=timedelta(seconds=cell.alarm_seconds),
            failed=cell.state != JobState.FINISHED,
        )
        for cell in cells
    ]


def fleet_title(job_id: int) -> str:
    return f"job {job_id}: occurrences and alarm time per object and alarm"


def _fleet_picture(job_id: int, cells: list[JobCell]) -> str:
    from jobs_pipeline.report import fleet_heatmap_png, markdown_image

    png = fleet_heatmap_png(fleet_cells(cells), title=fleet_title(job_id))
    return markdown_image(png, f"job {job_id} fleet")
