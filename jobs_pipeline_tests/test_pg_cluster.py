"""The throwaway PostgreSQL cluster: its data survives a restart and a SIGKILL, a pre-pinging
pool reconnects after a restart, and closing it frees its port and removes its directory."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobs_pipeline_tests import pg_cluster
from jobs_pipeline_tests.pg_cluster import (
    ClusterError,
    ThrowawayCluster,
    find_server_binaries,
    server_answers,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ROW = (1, "kept")


def _create_table_with_a_row(url: str) -> None:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE kept (id int PRIMARY KEY, label text)")
        connection.exec_driver_sql("INSERT INTO kept VALUES (%s, %s)", ROW)


def _rows(url: str) -> list[tuple[int, str]]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        return [tuple(row) for row in connection.exec_driver_sql("SELECT id, label FROM kept")]


def _port_is_free(port: int) -> bool:
    """Whether a server could listen on the port (a closed connection's TIME_WAIT does not
    count, as for PostgreSQL itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
        return True


@pytest.mark.slow
def test_restart_keeps_the_data_and_a_pre_pinging_pool_reconnects(
    private_pg_cluster: ThrowawayCluster,
) -> None:
    cluster = private_pg_cluster
    port = cluster.port
    _create_table_with_a_row(cluster.url)
    engine = sa.create_engine(cluster.url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            backend_before = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()

        cluster.restart()

        assert cluster.is_running()
        assert cluster.port == port
        # The pooled connection died with the old server; the pre-ping replaces it.
        with engine.connect() as connection:
            backend_after = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            rows = [tuple(row) for row in connection.exec_driver_sql("SELECT * FROM kept")]
        assert backend_after != backend_before
        assert rows == [ROW]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_killed_server_recovers_on_the_next_start(private_pg_cluster: ThrowawayCluster) -> None:
    cluster = private_pg_cluster
    port = cluster.port
    _create_table_with_a_row(cluster.url)

    cluster.kill()

    assert not cluster.is_running()
    assert _port_is_free(port)
    with pytest.raises(sa.exc.OperationalError):
        _rows(cluster.url)

    cluster.start()

    assert cluster.port == port
    assert _rows(cluster.url) == [ROW]
    assert "automatic recovery in progress" in cluster.log_path.read_text()


@pytest.mark.slow
def test_stop_then_close_frees_the_port_and_removes_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "pg"
    cluster = ThrowawayCluster(directory)
    try:
        cluster.start()
        admin = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE other")
        _create_table_with_a_row(cluster.url_for("other"))
        assert not _port_is_free(cluster.port)

        cluster.stop()

        assert not cluster.is_running()
        assert _port_is_free(cluster.port)
        assert (directory / "data" / "PG_VERSION").exists()
        cluster.stop()  # stopped already: nothing to do
    finally:
        cluster.close()
    assert not directory.exists()
    cluster.close()  # closed already: nothing to do


def _shared_memory_ids() -> set[int]:
    """The ids of the System V shared memory segments that exist."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(line.split()[1]) for line in lines}


@pytest.mark.slow
def test_close_after_a_kill_leaves_nothing_behind(tmp_path: Path) -> None:
    directory = tmp_path / "pg"
    with ThrowawayCluster(directory) as cluster:
        # Line 7 of postmaster.pid: the key and id of the server's System V segment.
        pid_file = (cluster.data_directory / "postmaster.pid").read_text().splitlines()
        segment = int(pid_file[6].split()[1])
        assert segment in _shared_memory_ids()
        cluster.kill()
    assert not directory.exists()
    assert _port_is_free(cluster.port)
    assert segment not in _shared_memory_ids()


@pytest.mark.slow
def test_command_line_start_prints_the_url_and_stop_stops(tmp_path: Path) -> None:
    directory = tmp_path / "pg"
    command = [sys.executable, "-m", "jobs_pipeline_tests.pg_cluster"]
    try:
        started = subprocess.run(
            [*command, "start", str(directory)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        url = started.stdout.strip()
        _create_table_with_a_row(url)
        assert subprocess.run([*command, "ping", url], cwd=REPO_ROOT).returncode == 0

        subprocess.run([*command, "stop", str(directory)], cwd=REPO_ROOT, check=True)

        assert not server_answers(url)
        assert subprocess.run([*command, "ping", url], cwd=REPO_ROOT).returncode == 1
        assert (directory / "data" / "PG_VERSION").exists()
    finally:
        ThrowawayCluster(directory).close()


def test_missing_server_binaries_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(pg_cluster, "PACKAGED_BINDIRS", tmp_path)
    with pytest.raises(
        ClusterError, match=r"initdb, pg_ctl, postgres .*no pg_config on PATH.*none exists"
    ):
        find_server_binaries()
