"""The performance database: schema, migrations, the job queue and the domain tables.

`PerfDB` is loaded on first use, so that importing `jobs_pipeline.perfdb.errors` or `.states`
(what the command line needs before it parses its arguments) imports no SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs_pipeline.perfdb.database import PerfDB

__all__ = ["PerfDB"]


def __getattr__(name: str) -> Any:
    if name == "PerfDB":
        from jobs_pipeline.perfdb.database import PerfDB

        return PerfDB
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
