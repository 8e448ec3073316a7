"""The performance database as a Dagster resource."""

import threading

import dagster as dg
from pydantic import Field

from jobs_pipeline.perfdb import PerfDB
from jobs_pipeline.perfdb.engine import default_url

# One PerfDB (engine and connection pool) per URL and process: resources are rebuilt for every
# run and sensor tick, their pools should not be.
_PERFDBS: dict[str, PerfDB] = {}
_PERFDBS_LOCK = threading.Lock()


def shared_perfdb(url: str) -> PerfDB:
    with _PERFDBS_LOCK:
        perfdb = _PERFDBS.get(url)
        if perfdb is None:
            perfdb = _PERFDBS[url] = PerfDB.connect(url)
        return perfdb


class PerfDBResource(dg.ConfigurableResource):
    """The performance database; `url` defaults to `PERFDB_URL`, else the embedded SQLite."""

    url: str | None = Field(
        default=None, description="SQLAlchemy URL; empty means $PERFDB_URL or the SQLite file"
    )
    skip_test_jobs: bool = Field(
        default=True,
        description='Do not run queued jobs whose description has the word "test" (seed rule): '
        "they end Failed with a comment that says so.",
    )

    @property
    def resolved_url(self) -> str:
        return self.url or default_url()

    def get(self) -> PerfDB:
        return shared_perfdb(self.resolved_url)
