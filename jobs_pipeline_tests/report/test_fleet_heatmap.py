"""The fleet heat map says what the tables say, and its words stay inside the picture.

Labels are read back from the drawn figure's text artists and tick labels, never recomputed
from the cells, and compared with what `jobs-pipeline alarms list` prints and with the job's
occurrences table.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta

import pytest
from matplotlib.figure import Figure

from jobs_pipeline.cli import main
from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.orchestration.summary import fleet_cells, fleet_title, job_summary
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.report import FleetCell, fleet_heatmap_figure, fleet_heatmap_png
from jobs_pipeline_tests.report.figures import texts_outside

DEMO_FLEET = {  # the fleet job of scripts/demo
    "object_names": ["LAN-01", "LAN-02", "LAN-03", "LAN-04", "LAN-05"],
    "alarm_ids": [1001, 1002, 1003, 1004],
    "start": "2025-12-18T00:00:00Z",
    "end": "2026-01-01T00:00:00Z",
}
UNITS = {"d": 86_400, "h": 3_600, "min": 60, "s": 1}


def seconds_of(text: str) -> float:
    """A printed duration in seconds: `8:20:00`, `1 day, 2:00:00` (Python's timedelta) or
    `8 h 20 min`, `2 d 5 min`, `45 s` (people's units)."""
    clock = re.fullmatch(r"(?:(\d+) days?, )?(\d+):(\d\d):(\d\d(?:\.\d+)?)", text)
    if clock:
        days, hours, minutes, seconds = clock.groups()
        return int(days or 0) * 86_400 + int(hours) * 3_600 + int(minutes) * 60 + float(seconds)
    parts = re.findall(r"(\d+(?:\.\d+)?) (d|h|min|s)\b", text)
    assert parts and " ".join(f"{n} {u}" for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(number) * UNITS[unit] for number, unit in parts)


def printed_table(text: str) -> list[dict[str, str]]:
    """The rows of a table printed by the CLI: columns start where their headings start."""
    header, *rows = [line for line in text.splitlines() if line.strip()]
    headings = list(re.finditer(r"\S+", header))
    names = [heading.group() for heading in headings]
    starts = [heading.start() for heading in headings]
    bounds = [*starts[1:], None]
    return [
        {
            name: row[start:stop].strip()
            for name, start, stop in zip(names, starts, bounds, strict=True)
        }
        for row in rows
        if not re.fullmatch(r"\d+ occurrences?", row.strip())
    ]


def drawn_labels(figure: Figure) -> dict[tuple[str, str], str]:
    """(object, alarm) -> the text drawn in that cell, read from the heat map's axes."""
    axes = figure.axes[0]
    rows = {round(label.get_position()[1]): label.get_text() for label in axes.get_yticklabels()}
    columns = {round(label.get_position()[0]): label.get_text() for label in axes.get_xticklabels()}
    labels = {}
    for text in axes.texts:
        column, row = text.get_position()
        labels[rows[round(row)], columns[round(column)]] = text.get_text()
    return labels


def test_heatmap_labels_equal_alarms_list_on_the_demo(
    perfdb: PerfDB, perfdb_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = ["demo", "seed", "--objects", "5", "--days", "14", "--seed", "0"]  # as scripts/demo
    assert main(["--db", perfdb_url, *demo]) == 0
    job = create_job(perfdb, "Alarm Calculation", DEMO_FLEET)
    assert JobAlarmCalc(job.id, perfdb=perfdb).run() == []
    capsys.readouterr()
    assert main(["--db", perfdb_url, "alarms", "list"]) == 0
    listed = printed_table(capsys.readouterr().out)
    count: dict[tuple[str, int], int] = defaultdict(int)
    seconds: dict[tuple[str, int], float] = defaultdict(float)
    for row in listed:
        key = (row["object"], int(row["alarm"].split()[0]))  # the id, with or without a name
        count[key] += 1
        seconds[key] += seconds_of(row["duration"])
    assert len(listed) > 20  # the demo's fleet has alarms, short and long, on most objects

    cells = perfdb.occurrences.job_cells(job.id)
    labels = drawn_labels(fleet_heatmap_figure(fleet_cells(cells), title=fleet_title(job.id)))

    assert len(labels) == 20  # every object x alarm cell is labelled
    for (object_name, alarm), label in labels.items():
        key = (object_name, int(alarm.split()[0]))
        occurrences, duration = label.split("\n")
        assert int(occurrences) == count[key], (key, label)
        assert seconds_of(duration) == seconds[key], (key, label)
    # The examples that disagreed before (the picture showed 8 h 19, 6 h 59 and 5 h 29).
    assert labels["LAN-01", "1001 Gearbox oil over-temperature"] == "2\n8 h 20 min"
    assert labels["LAN-03", "1002 Gearbox oil temperature warning"] == "2\n7 h"
    assert labels["LAN-04", "1002 Gearbox oil temperature warning"] == "1\n5 h 30 min"
    # The job's occurrences table, written from the same cells, uses the same words.
    table = job_summary(perfdb, job.id)["occurrences"].md_str
    for (object_name, alarm), label in labels.items():
        occurrences, duration = label.split("\n")
        assert f"| {object_name} | {alarm} | {occurrences} | {duration} |" in table


def fleet(objects: int, alarms: int) -> list[FleetCell]:
    return [
        FleetCell(
            object_name=f"LAN-{number:03d}",
            alarm_label=f"{1001 + alarm} Gearbox oil temperature warning",
            occurrences=number % 4,
            alarm_time=timedelta(minutes=37 * number + 11 * alarm),
            failed=number == 2 and alarm == 0,
        )
        for number in range(objects)
        for alarm in range(alarms)
    ]


LONG_TITLE = "job 123456: occurrences and alarm time per object and alarm, Sample inverters fleet"


@pytest.mark.parametrize("objects", [1, 3, 20, 100])
@pytest.mark.parametrize("alarms", [1, 8])
def test_titles_and_labels_stay_inside_the_figure(objects: int, alarms: int) -> None:
    figure = fleet_heatmap_figure(fleet(objects, alarms), title=LONG_TITLE)

    assert texts_outside(figure) == []
    assert figure.get_suptitle() == LONG_TITLE
    # Every object is named, or every n-th one where rows are thinner than a name.
    names = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert names[0] == "LAN-000" and len(names) >= min(objects, 40)


def test_cell_labels_are_drawn_only_where_cells_hold_them() -> None:
    small = fleet_heatmap_figure(fleet(2, 1), title="job 1")
    assert sorted(text.get_text() for text in small.axes[0].texts) == ["0\n0 s", "1\n37 min"]
    large = fleet_heatmap_figure(fleet(60, 8), title="job 1")
    assert len(large.axes[0].texts) == 480
    assert "failed" in {text.get_text() for text in large.axes[0].texts}
    crowded = fleet_heatmap_figure(fleet(300, 8), title="job 1")
    assert len(crowded.axes[0].texts) == 0
    assert texts_outside(crowded) == []


def test_a_labelled_large_fleet_stays_light_in_the_event_log() -> None:
    png = fleet_heatmap_png(fleet(60, 8), title="job 1")

    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) < 200_000  # 440 kB in full colour
