"""Fixtures of the orchestration tests: the resource `perfdb_job` runs with on the test's database
and a throwaway Dagster instance. The fleet the tests seed is in alarm_fleet.py."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pytest

from jobs_pipeline.orchestration.resources import PerfDBResource, shared_perfdb


@pytest.fixture
def perfdb_resource(perfdb_url: str) -> Iterator[PerfDBResource]:
    """The resource on this test's database; its process-wide engine is closed afterwards, before
    the database is dropped."""
    yield PerfDBResource(url=perfdb_url)
    shared_perfdb(perfdb_url).dispose()


@pytest.fixture
def dagster_instance() -> Iterator[dg.DagsterInstance]:
    """A persistent Dagster instance in a temporary home (re-execution needs stored runs)."""
    with dg.instance_for_test() as instance:
        yield instance
