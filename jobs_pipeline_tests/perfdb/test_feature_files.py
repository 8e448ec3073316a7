"""Feature files read in chunks: the fast CSV reader agrees with the exact one; reading ahead."""

from __future__ import annotations

import threading
from collections.abc import Generator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs_pipeline.perfdb.errors import ImportFailed
from jobs_pipeline.perfdb.feature_csv import parse_feature_csv
from jobs_pipeline.perfdb.feature_files import fast_csv_chunks, read_ahead


def test_blocks_are_gathered_into_chunks_with_the_names_of_every_block(tmp_path: Path) -> None:
    # Each 1 kB block holds some 30 lines and a name no other block has (its own dictionary).
    stamps = pd.date_range("2024-01-01", periods=60, freq="10min", tz="UTC")
    lines = [
        f"T{n:02d},p{n % 3},{stamp:%Y-%m-%dT%H:%M:%SZ},{n * 100 + i}"
        for n in range(1, 8)
        for i, stamp in enumerate(stamps)
    ]
    path = tmp_path / "values.csv"
    path.write_text("object,feature,timestamp,value\n" + "\n".join(lines) + "\n")

    chunks = list(fast_csv_chunks(path, chunk_rows=100, block_bytes=1024))
    blocks = list(fast_csv_chunks(path, chunk_rows=1, block_bytes=1024))

    assert len(blocks) >= 8 and 1 < len(chunks) < len(blocks)
    assert all(len(chunk) >= 100 for chunk in chunks[:-1])
    fast = pd.concat(chunks)
    exact = parse_feature_csv(path)
    assert fast.index.tolist() == list(range(1, 421))  # data rows, 1 the first
    for column in ("object", "feature"):
        assert fast[column].astype(str).tolist() == exact[column].tolist()
    assert (fast["timestamp"].to_numpy() == exact["timestamp"].to_numpy()).all()
    np.testing.assert_array_equal(fast["value"].to_numpy(), exact["value"].to_numpy())


def _frames(
    count: int, closed: list[bool], fail_after: int | None = None
) -> Generator[pd.DataFrame]:
    try:
        for number in range(count):
            if number == fail_after:
                raise ImportFailed(f"row {number}: bad")
            yield pd.DataFrame({"n": [number]})
    finally:
        closed.append(True)


def _readers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "feature-file-reader"]


def test_reading_ahead_yields_the_same_chunks_and_raises_the_same_error() -> None:
    closed: list[bool] = []
    seen: list[pd.DataFrame] = []

    assert [frame["n"][0] for frame in read_ahead(_frames(5, closed))] == [0, 1, 2, 3, 4]
    with pytest.raises(ImportFailed, match=r"^row 2: bad$"):
        seen.extend(read_ahead(_frames(5, closed, fail_after=2)))

    assert [frame["n"][0] for frame in seen] == [0, 1]
    assert closed == [True, True]
    assert _readers() == []


def test_a_reader_that_stops_early_stops_the_thread_and_closes_the_file() -> None:
    closed: list[bool] = []
    chunks = read_ahead(_frames(1000, closed))

    assert next(chunks)["n"][0] == 0
    chunks.close()  # what an error while writing the first chunk does

    assert closed == [True]
    assert _readers() == []
