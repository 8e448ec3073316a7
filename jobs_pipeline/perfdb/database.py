"""`PerfDB`: one performance database, its engine and the API of each group of tables.

The APIs are imported when first used: a command that only reads the queue never imports
pandas.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL, Engine

from jobs_pipeline.perfdb.engine import create_perfdb_engine, redact

if TYPE_CHECKING:
    from jobs_pipeline.perfdb.catalog import Catalog
    from jobs_pipeline.perfdb.feature_values import FeatureValues
    from jobs_pipeline.perfdb.occurrences import Occurrences
    from jobs_pipeline.perfdb.queue import JobQueue
    from jobs_pipeline.perfdb.schedules import Schedules


class PerfDB:
    """One performance database: its engine and the API of each group of tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def connect(cls, url: str | URL | None = None) -> PerfDB:
        """`url`, else `PERFDB_URL`, else the embedded SQLite file."""
        return cls(create_perfdb_engine(url))

    @property
    def url(self) -> str:
        return redact(self.engine.url)

    @cached_property
    def queue(self) -> JobQueue:
        from jobs_pipeline.perfdb.queue import JobQueue

        return JobQueue(self.engine)

    @cached_property
    def schedules(self) -> Schedules:
        from jobs_pipeline.perfdb.schedules import Schedules

        return Schedules(self.engine)

    @cached_property
    def catalog(self) -> Catalog:
        from jobs_pipeline.perfdb.catalog import Catalog

        return Catalog(self.engine)

    @cached_property
    def values(self) -> FeatureValues:
        from jobs_pipeline.perfdb.feature_values import FeatureValues

        return FeatureValues(self.engine)

    @cached_property
    def occurrences(self) -> Occurrences:
        from jobs_pipeline.perfdb.occurrences import Occurrences

        return Occurrences(self.engine)

    def has_schema(self) -> bool:
        """Whether the migrations have built the schema here (one cheap query)."""
        import sqlalchemy as sa

        from jobs_pipeline.perfdb.engine import begin

        with begin(self.engine, write=False) as connection:
            return sa.inspect(connection).has_table("alembic_version")

    def dispose(self) -> None:
        self.engine.dispose()
