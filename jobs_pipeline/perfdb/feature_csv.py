"""The exact parser of feature CSV files: slower than pyarrow's (`feature_files`), but it names
the line of every problem, blank lines and all. Imports fall back to it when the fast parser
refuses a file, and `parse_feature_csv` reads a whole file with it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.feature_files import (
    CSV_COLUMNS,
    SourceFailed,
    check_columns,
    csv_read_problem,
)

_MISSING_VALUE_TEXT = frozenset({"", "nan"})
LINE_INDEX = "line"


def parse_feature_csv(source: str | Path | IO[str]) -> pd.DataFrame:
    """Reads and checks a whole feature CSV (columns object, feature, timestamp, value).

    Returns a frame with `object` and `feature` as strings, `timestamp` as UTC datetimes and
    `value` as float with NaN for "no data" (an empty cell or `NaN`), indexed by line number in
    the file (an index named "line", so that `import_frame` names lines). Raises `ImportFailed`
    naming the first bad line (line 1 is the header) or the missing columns.
    """
    return pd.concat(list(exact_csv_chunks(source, chunk_rows=None)))


def exact_csv_chunks(
    source: str | Path | IO[str], *, chunk_rows: int | None
) -> Iterator[pd.DataFrame]:
    """The CSV in checked chunks indexed by line: slower than `fast_csv_chunks`, but it names
    the line of every problem (blank lines and all)."""
    try:
        # Blank lines are kept while reading so that positions stay line numbers.
        reader = pd.read_csv(
            source,
            dtype=str,
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=False,
            chunksize=chunk_rows,
        )
        if chunk_rows is None:
            yield _checked_csv_chunk(reader, 2)
            return
        first_line = 2
        with reader:
            for chunk in reader:
                yield _checked_csv_chunk(chunk, first_line)
                first_line += len(chunk)
    except FileNotFoundError:
        raise ImportFailed(f"no such file: {source}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ImportFailed(csv_read_problem(error, source)) from None
    except pd.errors.EmptyDataError:
        raise ImportFailed(
            "the CSV is empty: expected a header object,feature,timestamp,value"
        ) from None
    except OSError as error:
        raise SourceFailed(f"reading {source} failed: {error}; nothing was written") from None


def _checked_csv_chunk(frame: pd.DataFrame, first_line: int) -> pd.DataFrame:
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    check_columns(list(frame.columns))
    blank = (frame.iloc[:, 0] == "").to_numpy(copy=True)
    if blank.any():
        blank[blank] = (frame.loc[blank] == "").all(axis=1).to_numpy()
    line_numbers = (np.arange(len(frame)) + first_line)[~blank]
    frame = frame.loc[~blank, list(CSV_COLUMNS)].reset_index(drop=True)

    # Names are stripped once per distinct name, not once per line; the parsers below accept
    # surrounding whitespace themselves.
    names = {column: _stripped(frame[column]) for column in ("object", "feature")}
    for column, stripped in names.items():
        _reject(stripped == "", line_numbers, frame[column], f"empty {column} name")

    text = frame["timestamp"]
    timestamps = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    _reject(timestamps.isna().to_numpy(), line_numbers, text, "bad timestamp")

    raw_values = frame["value"]
    values = pd.to_numeric(raw_values, errors="coerce").astype("float64").to_numpy()
    not_a_number = np.isnan(values)
    missing_value = np.zeros(len(values), dtype=bool)
    if not_a_number.any():
        missing_value[not_a_number] = (
            raw_values[not_a_number].str.strip().str.lower().isin(_MISSING_VALUE_TEXT).to_numpy()
        )
    _reject(
        (not_a_number & ~missing_value) | np.isinf(values), line_numbers, raw_values, "bad number"
    )

    return pd.DataFrame(
        {
            "object": names["object"],
            "feature": names["feature"],
            "timestamp": timestamps.dt.as_unit("us").array,
            "value": values,
        },
        index=pd.Index(line_numbers, name=LINE_INDEX),
    )


def _stripped(column: pd.Series) -> np.ndarray:
    codes, uniques = pd.factorize(column)
    return np.asarray([str(name).strip() for name in uniques], dtype=object)[codes]


def _reject(bad: np.ndarray, line_numbers: np.ndarray, shown: pd.Series, what: str) -> None:
    positions = np.flatnonzero(np.asarray(bad, dtype=bool))
    if positions.size:
        first = int(positions[0])
        more = f" (and {positions.size - 1} more lines)" if positions.size > 1 else ""
        text = str(shown.iloc[first]).strip()
        raise ImportFailed(f"line {line_numbers[first]}: {what} {text!r}{more}")
