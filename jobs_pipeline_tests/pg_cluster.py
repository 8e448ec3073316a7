"""A throwaway PostgreSQL cluster: a data directory, port and server of its own.

Tests that stop, restart or kill PostgreSQL need one: they must never touch the shared server the
rest of the suite uses. `scripts/test` also starts one when no server answers at
`JOBS_PIPELINE_TEST_PG_URL`. Linux only (the server's processes are found in /proc). Run as root,
every server command runs as the `postgres` OS user, since PostgreSQL refuses to run as root.

    python -m jobs_pipeline_tests.pg_cluster start DIR   # prints the URL, leaves the server running
    python -m jobs_pipeline_tests.pg_cluster stop DIR
"""

from __future__ import annotations

import argparse
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from psycopg import pq
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

SUPERUSER = "postgres"
SERVER_OS_USER = "postgres"
SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
# Where Debian and Ubuntu install each major version's server binaries.
PACKAGED_BINDIRS = Path("/usr/lib/postgresql")
STOP_MODES = ("smart", "fast", "immediate")
LOG_TAIL_LINES = 30
# Nothing needs to survive a power cut, so nothing waits for the disk; a killed server must keep
# what it committed, though (synchronous_commit stays on: off, a SIGKILL loses the last commits).
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "'16MB'",
    "max_connections": "200",
}


class ClusterError(RuntimeError):
    """A throwaway PostgreSQL cluster could not be set up, started or stopped."""


def find_server_binaries() -> Path:
    """The directory holding initdb, pg_ctl and postgres: `pg_config --bindir`, else the newest
    `/usr/lib/postgresql/*/bin` (pg_config may come with the client alone)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    versions = [path for path in PACKAGED_BINDIRS.glob("*/bin") if path.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda path: int(path.parent.name), reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / program, os.X_OK) for program in SERVER_PROGRAMS):
            return bindir
    looked_at = ", ".join(str(path) for path in candidates) or "none exists"
    raise ClusterError(
        f"PostgreSQL server binaries not found: {', '.join(SERVER_PROGRAMS)} are in no "
        f"directory named by `pg_config --bindir` ({pg_config or 'no pg_config on PATH'}) or "
        f"matching {PACKAGED_BINDIRS}/*/bin (looked at: {looked_at}); "
        "install the PostgreSQL server package"
    )


def server_answers(url: str, timeout: int = 3) -> bool:
    """Whether a PostgreSQL server answers at the URL's host and port, like `pg_isready`: one that
    is starting up or rejects the URL's user still answers."""
    parsed = make_url(url)
    conninfo = make_conninfo(
        host=parsed.host,
        port=parsed.port,
        dbname=parsed.database,
        user=parsed.username,
        connect_timeout=max(timeout, 2),
    )
    return pq.PGconn.ping(conninfo.encode()) != pq.Ping.NO_RESPONSE


def free_port() -> int:
    """A TCP port nothing listens on now, chosen by the kernel."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ThrowawayCluster:
    """A PostgreSQL cluster in `directory` (data in `data/`, log in `server.log`, unix socket in
    the directory itself) listening on 127.0.0.1:`port` only; superuser `postgres`, trust auth.

    The port is chosen once (a free one unless given) and kept across restarts. `close()`, or
    leaving a `with` block (which starts it), stops the server and removes the directory."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.port = port if port is not None else free_port()
        self.bindir = find_server_binaries()
        self._run_as: list[str] = []
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise ClusterError("running as root needs runuser (util-linux) to run PostgreSQL")
            try:
                self._owner = pwd.getpwnam(SERVER_OS_USER)
            except KeyError:
                raise ClusterError(
                    f"running as root needs an OS user {SERVER_OS_USER!r} to run PostgreSQL"
                ) from None
            self._run_as = [runuser, "-u", SERVER_OS_USER, "--"]

    @property
    def data_directory(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this cluster, as its superuser."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log yet)"
        return "\n".join(text.splitlines()[-lines:])

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Initialises the cluster on first use, then starts the server and waits until it
        accepts connections. After `kill()` this is crash recovery."""
        running = self._postmaster()
        if running is not None:
            raise ClusterError(f"already running (postmaster {running.pid}) in {self.directory}")
        self._prepare_directory()
        if not (self.data_directory / "PG_VERSION").exists():
            self._initdb()
        self._run(
            "pg_ctl", "start", "--wait", f"--timeout={max(int(timeout), 1)}",
            "-D", str(self.data_directory), "-l", str(self.log_path), "-o", f"-p {self.port}",
            timeout=timeout + 10,
        )  # fmt: skip
        self._wait_until_accepting(timeout)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stops the server with pg_ctl's shutdown `mode`; the data stays. Nothing if stopped."""
        if mode not in STOP_MODES:
            raise ValueError(f"mode must be one of {', '.join(STOP_MODES)}, not {mode!r}")
        if self._postmaster() is None:
            return
        self._run(
            "pg_ctl", "stop", "--wait", f"--timeout={max(int(timeout), 1)}",
            "-D", str(self.data_directory), "-m", mode,
            timeout=timeout + 10,
        )  # fmt: skip

    def restart(self, timeout: float = 60.0) -> None:
        """A clean stop, then a start on the same port with the same data."""
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILLs the postmaster and every process it started, as a crash would."""
        postmaster = self._postmaster()
        if postmaster is None:
            raise ClusterError(f"no server is running in {self.directory}")
        # Stopped, it cannot start another child between the listing and the kill.
        os.kill(postmaster.pid, signal.SIGSTOP)
        _wait(lambda: _process_state(postmaster.pid) in (None, "T", "t", "Z"), timeout, "SIGSTOP")
        doomed = [postmaster.pid, *_children(postmaster.pid)]
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait(lambda: not any(_alive(pid) for pid in doomed), timeout, "the server's processes")
        # The dead postmaster stays a zombie until init reaps it, and a zombie's pid passes
        # kill(pid, 0): the next postmaster would take its lock files for a live server's.
        (self.data_directory / "postmaster.pid").unlink(missing_ok=True)
        if postmaster.socket_lock is not None:
            postmaster.socket_lock.unlink(missing_ok=True)
        # Its System V shared memory segment (a small interlock against orphaned backends, of
        # which there are none now) would outlive the cluster; the next start makes a new one.
        if postmaster.shmem_id is not None:
            removed = subprocess.run(
                ["ipcrm", "-m", str(postmaster.shmem_id)], capture_output=True, text=True
            )
            if removed.returncode != 0:
                raise ClusterError(f"ipcrm -m {postmaster.shmem_id}: {removed.stderr.strip()}")

    def is_running(self) -> bool:
        return self._postmaster() is not None

    def close(self) -> None:
        """Stops the server however it can (also after `kill()`) and removes the directory."""
        try:
            if self.is_running():
                try:
                    self.stop("fast", timeout=30)
                except ClusterError:
                    self.kill()
        finally:
            if self.directory.exists():
                shutil.rmtree(self.directory)

    def __enter__(self) -> ThrowawayCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- helpers ---------------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._owner is None:
            return
        os.chown(self.directory, self._owner.pw_uid, self._owner.pw_gid)
        self.directory.chmod(0o700)
        # The postgres user must be able to reach the directory through root's private ones
        # (pytest's temporary folders are 0700): traverse only, nothing listed.
        for parent in self.directory.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)

    def _initdb(self) -> None:
        self._run(
            "initdb", "-D", str(self.data_directory), "-A", "trust", "-U", SUPERUSER,
            "-E", "UTF8", "--locale=C", "--no-sync",
            timeout=120,
        )  # fmt: skip
        settings = {**SETTINGS, "unix_socket_directories": _quoted(str(self.directory))}
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (self.data_directory / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# throwaway cluster for tests\n{lines}")

    def _run(self, program: str, *args: str, timeout: float) -> None:
        command = [*self._run_as, str(self.bindir / program), *args]
        try:
            result = subprocess.run(
                command,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ClusterError(
                f"{program} {shlex.join(args)} did not finish within {timeout:.0f} s"
                f"\nserver log ({self.log_path}):\n{self.log_tail()}"
            ) from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ClusterError(
                f"{program} {shlex.join(args)} failed (exit {result.returncode}):\n{output}"
                f"\nserver log ({self.log_path}):\n{self.log_tail()}"
            )

    def _wait_until_accepting(self, timeout: float) -> None:
        conninfo = make_conninfo(
            host="127.0.0.1", port=self.port, dbname="postgres", user=SUPERUSER, connect_timeout=2
        ).encode()
        deadline = time.monotonic() + timeout
        while pq.PGconn.ping(conninfo) != pq.Ping.OK:
            if time.monotonic() > deadline or self._postmaster() is None:
                raise ClusterError(
                    f"the server on port {self.port} does not accept connections"
                    f"\nserver log ({self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _postmaster(self) -> _Postmaster | None:
        """The live postmaster named by `postmaster.pid`, if any."""
        try:
            lines = (self.data_directory / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        if not lines or not lines[0].strip().isdigit():
            return None  # being written by a starting postmaster
        pid = int(lines[0])
        if not _alive(pid):
            return None
        # Lines 4 and 5: its port and its first unix socket directory; line 7: the key and id
        # of its System V shared memory segment. A starting postmaster may not have written them.
        fields = [line.split() for line in lines]
        socket_lock = None
        if len(fields) >= 5 and fields[3] and fields[4]:
            socket_lock = Path(lines[4].strip()) / f".s.PGSQL.{fields[3][0]}.lock"
        shmem_id = None
        if len(fields) >= 7 and len(fields[6]) == 2 and fields[6][1].isdigit():
            shmem_id = int(fields[6][1])
        return _Postmaster(pid, socket_lock, shmem_id)


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    socket_lock: Path | None  # its unix socket's lock file
    shmem_id: int | None  # its System V shared memory segment


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (R, S, T, Z, ...), None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may itself hold spaces and parentheses.
    return text.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    return _process_state(pid) not in (None, "Z", "X")


def _children(parent: int) -> list[int]:
    children = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone since the listing
        if int(fields[1]) == parent:
            children.append(int(stat_file.parent.name))
    return children


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


# --- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs_pipeline_tests.pg_cluster",
        description="A throwaway PostgreSQL cluster in a directory of its own.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser(
        "start", help="initialise DIR if needed, start its server and print its URL"
    )
    start.add_argument("directory", type=Path, metavar="DIR")
    start.add_argument("--port", type=int, help="default: a free one")
    stop = commands.add_parser("stop", help="stop the server of DIR (its data stays)")
    stop.add_argument("directory", type=Path, metavar="DIR")
    ping = commands.add_parser("ping", help="exit 0 if a server answers at URL, 1 if nothing does")
    ping.add_argument("url", metavar="URL")
    commands.add_parser(
        "bindir", help="print where the server binaries are, exit 1 if they are not installed"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = ThrowawayCluster(args.directory, args.port)
            cluster.start()
            print(cluster.url)
        elif args.command == "stop":
            ThrowawayCluster(args.directory).stop()
        elif args.command == "ping":
            return 0 if server_answers(args.url) else 1
        else:
            print(find_server_binaries())
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
