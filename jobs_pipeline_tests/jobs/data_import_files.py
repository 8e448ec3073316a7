"""Feature files for Data Import jobs: the job type's name and a CSV file of sample lines under
the header the import expects."""

from __future__ import annotations

from pathlib import Path

DATA_IMPORT = "Data Import"
HEADER = "object,feature,timestamp,value\n"


def csv_file(path: Path, lines: list[str]) -> str:
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return str(path)
