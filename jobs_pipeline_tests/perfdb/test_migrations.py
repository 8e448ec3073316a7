"""The schema the Alembic migrations build is exactly the models' schema, on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from jobs_pipeline.jobs import job_type_specs, upgrade_database
from jobs_pipeline.perfdb import PerfDB, rules_postgresql, rules_sqlite
from jobs_pipeline.perfdb.migrate import current_revision, downgrade, head_revision, upgrade
from jobs_pipeline.perfdb.models import Base
from jobs_pipeline.perfdb.states import JobState
from jobs_pipeline_tests.conftest import BACKENDS


@pytest.mark.parametrize("empty_perfdb_url", BACKENDS, indirect=True)
def test_migrations_build_the_models_schema(empty_perfdb_url: str) -> None:
    perfdb = PerfDB.connect(empty_perfdb_url)
    upgrade(perfdb.engine)
    with perfdb.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    perfdb.dispose()
    assert differences == []


@pytest.mark.parametrize("empty_perfdb_url", BACKENDS, indirect=True)
def test_upgrade_seeds_states_and_job_types_and_is_repeatable(empty_perfdb_url: str) -> None:
    perfdb = PerfDB.connect(empty_perfdb_url)
    upgrade_database(perfdb)
    upgrade_database(perfdb)  # a second run changes nothing and does not fail
    assert current_revision(perfdb.engine) == head_revision()
    with perfdb.engine.connect() as connection:
        states = dict(connection.execute(sa.text("SELECT id, name FROM job_states")).all())
        types = connection.execute(sa.text("SELECT name, parameters_schema FROM job_types")).all()
    perfdb.dispose()
    assert states == {state.value: state.label for state in JobState}
    assert [row.name for row in types] == [spec.name for spec in job_type_specs()]
    assert "Alarm Calculation" in [row.name for row in types]


@pytest.mark.parametrize("empty_perfdb_url", BACKENDS, indirect=True)
def test_migrations_install_the_rules_triggers_and_downgrade_removes_them(
    empty_perfdb_url: str,
) -> None:
    perfdb = PerfDB.connect(empty_perfdb_url)
    upgrade(perfdb.engine)
    postgresql = perfdb.engine.dialect.name == "postgresql"
    query = (
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        if postgresql
        else "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    )
    expected = set(
        rules_postgresql.postgresql_trigger_names()
        if postgresql
        else rules_sqlite.sqlite_trigger_names()
    )
    with perfdb.engine.connect() as connection:
        installed = set(connection.exec_driver_sql(query).scalars())
    assert expected <= installed
    downgrade(perfdb.engine, "0004")
    with perfdb.engine.connect() as connection:
        left = set(connection.exec_driver_sql(query).scalars())
        columns = {column["name"] for column in sa.inspect(connection).get_columns("job_steps")}
    perfdb.dispose()
    assert not expected & left
    assert "actor" not in columns
