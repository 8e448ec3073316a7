"""The whole-array steps an alarm's occurrences are built from: the positions of the samples
that qualify, the runs they form without a gap or another sample between them, where each run's
coverage ends, and each run's first violating sample. Timestamps are int64 index units."""

from __future__ import annotations

from typing import Final

import numpy as np

_EMPTY_INT = np.empty(0, dtype=np.int64)


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# 0, 1, 2, ... for `positions_of`, grown on demand up to a limit.
_POSITIONS_LIMIT: Final = 1 << 21
_positions_table = read_only(np.arange(1 << 16, dtype=np.intp))


def positions_of(mask: np.ndarray) -> np.ndarray:
    """``mask.nonzero()[0]``, faster: numpy's nonzero branches per element and slows down
    several times on masks that change often (a noisy signal near its threshold), while
    selecting from a table of positions with the mask does not."""
    global _positions_table
    n = len(mask)
    if n > _POSITIONS_LIMIT:
        return mask.nonzero()[0]
    if n > len(_positions_table):
        _positions_table = read_only(np.arange(1 << (n - 1).bit_length(), dtype=np.intp))
    return _positions_table[:n][mask]


def contiguous_runs(
    positions: np.ndarray, stamps: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """Runs of qualifying samples that follow each other without a sample or a gap between.

    Two consecutive qualifying samples belong to the same run when the second is the very next
    sample of the period and is contiguous with the first: anything else between them is a
    sample that does not qualify (NaN included) or a gap, and either ends the occurrence.

    Args:
        positions: Positions of the qualifying samples among the period's samples, ascending.
        stamps: Their timestamps, in index units.
        limit: `contiguity_limit` in index units.

    Returns:
        The first and last index (inclusive) into ``positions`` of each run.

    Raises:
        ValueError: The timestamps are not strictly increasing.
    """
    steps = stamps[1:] - stamps[:-1]
    # As unsigned numbers, steps - 1 >= limit catches both a gap and a step that is not
    # positive (which wraps around to a huge number) in one comparison.
    steps -= 1
    # A run starts at index 0 and after every break, and the next one starts after its end.
    starts = np.empty(len(stamps) + 1, dtype=bool)
    starts[0] = starts[-1] = True
    apart = starts[1:-1]
    np.greater_equal(steps.view(np.uint64), limit, out=apart)
    apart |= positions[1:] - positions[:-1] != 1
    if len(steps) and steps.min() < 0:
        raise ValueError("values must be indexed by strictly increasing timestamps")
    edges = starts.nonzero()[0]
    return edges[:-1], edges[1:] - 1


def coverage_ends(
    stamps: np.ndarray,
    positions: np.ndarray,
    own: np.ndarray,
    limit: int,
    period: int,
    out: np.ndarray,
) -> None:
    """Writes to ``out`` where the coverage of the samples ``own = stamps[positions]`` ends, in
    index units: at the next sample when it is contiguous, else one sampling period (``period``,
    in index units) after the sample. The last sample of the period has no next sample (the
    samples after the period are not read)."""
    # Clipped, the last sample of the period is its own successor: a step of 0 is no successor.
    stamps.take(positions + 1, mode="clip", out=out)
    steps = out - own
    steps -= 1
    apart = steps.view(np.uint64) >= limit
    np.add(own, period, out=out, where=apart)


def first_violations(
    violates: np.ndarray, first: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each run's first violating sample, and which runs have one (None when all do)."""
    candidates = violates.nonzero()[0]
    if not len(candidates):
        return _EMPTY_INT, np.zeros(len(first), dtype=bool)
    # The first candidate at or after each run's first sample (clipped: the last one, which is
    # then before the run), and whether it is inside the run.
    start = candidates.take(candidates.searchsorted(first, side="left"), mode="clip")
    active = start >= first
    active &= start <= last
    if np.count_nonzero(active) == len(active):
        return start, None
    return start[active], active
