"""Feature files for Data Import jobs: the job type's name and a CSV file of sample lines under
the header the import expects."""

from __future__ import annotations

from pathlib import Path

DATA_IMPORT = "Data Import"
HEADER = "object,feature,timestamp,value\n"


def csv_file(path: Path, lines: list[str]) -> str:
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return str(path)


def good_and_bad_files(folder: Path) -> tuple[str, str]:
    """Two files for one import: six valid `ac_power` values of INV-01 (one hour, 10-minute
    steps), and one whose only value is not a number."""
    good = csv_file(
        folder / "good.csv",
        [f"INV-01,ac_power,2024-01-01T00:{minute:02d}:00Z,1.5" for minute in range(0, 60, 10)],
    )
    return good, csv_file(folder / "bad.csv", ["INV-02,ac_power,2024-01-01T00:00:00Z,x"])
