"""The pictures of `jobs_pipeline.report` at the sizes people meet, drawn from real calculations
on throwaway SQLite databases (the demo's synthetic fleet) rather than from the UI:

- `fleet-small.png`: the heat map of a 2-object fleet (the title must fit a narrow picture);
- `fleet-large.png`: the heat map of 60 objects x 8 alarms;
- `alarms-plot-short.png`: `jobs-pipeline alarms plot` of the object with the most short
  occurrences (10-30 min) over 14 days.

    .venv/bin/python scripts/report_pictures.py OUTPUT_DIR
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from jobs_pipeline.jobs import JobAlarmCalc, create_job
from jobs_pipeline.orchestration.summary import fleet_cells, fleet_title
from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.report import fleet_heatmap_png

DAYS = 14
START, END = "2025-12-18T00:00:00Z", "2026-01-01T00:00:00Z"  # the demo's last 14 days
SHORT_ALARM = 1004  # rotor overspeed: one to three samples above 17.5 rpm
# Four more rules on the demo's features, so that the large fleet has 8 alarms.
MORE_ALARMS = (
    (1005, "Nacelle temperature high", "nacelle_temperature", ">", 18.0, 17.0),
    (1006, "Storm wind", "wind_speed", ">", 20.0, None),
    (1007, "Frost", "ambient_temperature", "<", -2.0, None),
    (1008, "Gearbox warm", "gearbox_temperature", ">", 40.0, 38.0),
)


def jobs_pipeline(url: str, *args: str) -> str:
    """Runs the installed command, as people do."""
    command = Path(sys.executable).with_name("jobs-pipeline")
    done = subprocess.run(
        [str(command), "--db", url, *args], check=True, capture_output=True, text=True
    )
    return done.stdout


def calculated_fleet(directory: Path, objects: int, alarms: int) -> tuple[PerfDB, str, int]:
    """A seeded demo fleet of `objects` with `alarms` alarm definitions, calculated as one job."""
    url = f"sqlite:///{directory / f'fleet-{objects}.sqlite'}"
    jobs_pipeline(url, "db", "upgrade")
    jobs_pipeline(url, "demo", "seed", "--objects", str(objects), "--days", str(DAYS))
    perfdb = PerfDB.connect(url)
    for alarm_id, name, feature, operator, threshold, clear in MORE_ALARMS[: max(alarms - 4, 0)]:
        perfdb.catalog.define_alarm(
            alarm_id=alarm_id,
            name=name,
            feature=feature,
            operator=operator,
            threshold=threshold,
            clear_threshold=clear,
        )
    alarm_ids = sorted(alarm.id for alarm in perfdb.catalog.list_alarms())[:alarms]
    parameters = {
        "object_names": perfdb.catalog.list_objects(),
        "alarm_ids": alarm_ids,
        "start": START,
        "end": END,
    }
    job = create_job(perfdb, "Alarm Calculation", parameters, description="pictures")
    JobAlarmCalc(job.id, perfdb=perfdb).run()
    return perfdb, url, job.id


def heat_map(perfdb: PerfDB, job_id: int, path: Path) -> None:
    cells = fleet_cells(perfdb.occurrences.job_cells(job_id))
    path.write_bytes(fleet_heatmap_png(cells, title=fleet_title(job_id)))
    print(path)


def save_report_pictures(out: Path) -> None:
    with tempfile.TemporaryDirectory() as directory:
        small, _, job_id = calculated_fleet(Path(directory), objects=2, alarms=4)
        heat_map(small, job_id, out / "fleet-small.png")
        small.dispose()
        large, url, job_id = calculated_fleet(Path(directory), objects=60, alarms=8)
        heat_map(large, job_id, out / "fleet-large.png")
        short = Counter(
            occurrence.object_name for occurrence in large.occurrences.list(alarm_id=SHORT_ALARM)
        )
        large.dispose()
        busiest = short.most_common(1)[0][0]
        path = out / "alarms-plot-short.png"
        print(
            jobs_pipeline(
                url, "alarms", "plot", "--object", busiest, "--alarm", str(SHORT_ALARM),
                "-o", str(path),
            ).strip()
        )  # fmt: skip


if __name__ == "__main__":
    save_report_pictures(Path(sys.argv[1]))
