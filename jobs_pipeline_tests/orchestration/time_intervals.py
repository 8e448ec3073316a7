"""Time intervals of a job's runs or steps, and how many of them ran at once at the most (to check
a limit on concurrency, or that independent work overlapped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class Interval:
    job_id: int
    started: datetime
    finished: datetime


def most_at_once(intervals: list[Interval]) -> int:
    edges = sorted(
        [(i.started, 1) for i in intervals] + [(i.finished, -1) for i in intervals],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak
