"""The run page of `dagster-webserver`, timed: the queries the UI sends to show a run
(`run_page.graphql`: the run, the first page of its events, its step stats), each answered
`repeat` times."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RUN_PAGE_QUERIES = Path(__file__).resolve().parent / "run_page.graphql"
RUN_PAGE_OPERATIONS = ("RunRootQuery", "RunLogsQuery", "RunStepStatsQuery")
# The UI asks for the first page of a run's events with this limit (LogsProvider.tsx).
RUN_LOGS_PAGE = 1000


def time_run_page(url: str, run_id: str, repeat: int) -> dict[str, list[float]]:
    """Seconds per answer of each of the run page's queries (`repeat` times each)."""
    document = RUN_PAGE_QUERIES.read_text()
    timings: dict[str, list[float]] = {}
    for operation in RUN_PAGE_OPERATIONS:
        variables: dict[str, Any] = {"runId": run_id}
        if operation == "RunLogsQuery":
            variables.update(cursor=None, limit=RUN_LOGS_PAGE)
        body = json.dumps(
            {"query": document, "operationName": operation, "variables": variables}
        ).encode()
        for _ in range(repeat):
            request = urllib.request.Request(
                f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
            )
            started = time.perf_counter()
            with urllib.request.urlopen(request, timeout=600) as response:
                answer = json.loads(response.read())
            timings.setdefault(operation, []).append(time.perf_counter() - started)
            if answer.get("errors"):
                raise RuntimeError(f"{operation}: {answer['errors']}")
    return timings


def page_seconds(queries: Mapping[str, Sequence[float]]) -> float | None:
    """The run page's time: the sum of its queries' median answers (None: not timed)."""
    if not queries:
        return None
    return sum(statistics.median(times) for times in queries.values())
