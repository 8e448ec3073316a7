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
from jobs_pipeline.perfdb.records import Step
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
    executed), failed steps with their comments; for alarm steps the occurrences per object and
    alarm with names and a heat map of the fleet, for other steps (derived features, imports)
    each step's object, feature or file and the rows it wrote."""
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
    # Each kind of step with what it wrote: occurrences for alarm steps, rows for the others.
    alarm_cells = [cell for cell in cells if cell.alarm_id is not None]
    if alarm_cells:
        metadata.update(_occurrence_tables(job_id, alarm_cells))
    if len(alarm_cells) < len(cells):
        metadata.update(_written_table(perfdb.queue.get_steps(job_id), job.parameters))
    return metadata


def _occurrence_tables(job_id: int, cells: list[JobCell]) -> dict[str, Any]:
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
    metadata: dict[str, Any] = {
        "occurrences": dg.MetadataValue.md("\n".join(lines)),
        "occurrences_total": sum(cell.occurrences for cell in cells),
    }
    if len(cells) <= MAX_PICTURE_CELLS:
        metadata["fleet"] = dg.MetadataValue.md(_fleet_picture(job_id, cells))
    return metadata


def _rows_written(step: Step) -> int | None:
    """What a step without alarm wrote: values of a derived feature, rows of a file."""
    details = step.details or {}
    rows = details.get("values_written", details.get("rows"))
    return None if rows is None or step.state != JobState.FINISHED else int(rows)


def _written_table(all_steps: list[Step], parameters: dict[str, Any]) -> dict[str, Any]:
    """The steps without alarm, with their object, feature or file and the rows they wrote;
    columns that no step has are left out (a Data Import's steps have a file, no object)."""
    steps = [step for step in all_steps if step.alarm_id is None]
    # A step about a file is at the file's position in `paths` (failed ones have no details).
    paths = parameters.get("paths") or []

    def file_of(step: Step) -> str | None:
        if step.object_id is not None or step.position >= len(paths):
            return None
        return str(paths[step.position])

    columns = {
        "object": lambda step: step.object_name,
        "feature": lambda step: step.feature_name,
        "file": file_of,
    }
    shown = {name: cell for name, cell in columns.items() if any(map(cell, steps))}
    lines = [
        "| step | " + "".join(f"{name} | " for name in shown) + "state | rows |",
        "| ---: | " + "--- | " * len(shown) + "--- | ---: |",
    ]
    for step in steps[:MAX_TABLE_ROWS]:
        rows = _rows_written(step)
        cells = "".join(f"{_cell_text(cell(step))} | " for cell in shown.values())
        lines.append(f"| {step.id} | {cells}{step.state.label} | {'' if rows is None else rows} |")
    if len(steps) > MAX_TABLE_ROWS:
        lines.append(f"| | ... and {len(steps) - MAX_TABLE_ROWS} more |" + " |" * (len(shown) + 1))
    return {
        "steps": dg.MetadataValue.md("\n".join(lines)),
        "rows_total": sum(_rows_written(step) or 0 for step in steps),
    }


def _alarm_label(cell: JobCell) -> str:
    if cell.alarm_id is None:
        return ""
    return _cell_text(f"{cell.alarm_id} {cell.alarm_name or ''}".strip())


def fleet_cells(cells: list[JobCell]) -> list[FleetCell]:
    """The heat map's cells, from the rows the occurrences table is written from."""
    from jobs_pipeline.report import FleetCell

    return [
        FleetCell(
            object_name=cell.object_name or "",
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
