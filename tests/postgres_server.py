"""A throwaway PostgreSQL server in a temporary folder, from Debian's server binaries.

Tests and the warehouse benchmark start one with `throwaway_server()`; nothing outside the folder
is touched, and the folder is removed when the server stops. PostgreSQL refuses to run as root,
so as root the server runs as the `postgres` system user the Debian package creates, owning the
folder. It listens on 127.0.0.1 on a free port and on a socket inside the folder, trusts local
connections, and skips fsync: it holds nothing worth keeping.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVER_GLOB = "/usr/lib/postgresql/*/bin"
INSTALL_HINT = "apt-get install postgresql (.ci/run and `make test` install it)"
SUPERUSER = "workbench"


class ServerUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server would not start."""


def server_binaries() -> Path:
    """The newest Debian PostgreSQL bin folder holding initdb, pg_ctl and postgres."""
    found = []
    for folder in glob.glob(SERVER_GLOB):
        if all(os.access(Path(folder) / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            match = re.search(r"/(\d+)/bin$", folder)
            found.append((int(match.group(1)) if match else 0, Path(folder)))
    if not found:
        raise ServerUnavailable(f"no PostgreSQL server binaries under {SERVER_GLOB}: {INSTALL_HINT}")
    return max(found)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    if shutil.which("runuser") is None:
        raise ServerUnavailable("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Server:
    folder: Path
    port: int
    bin: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = _as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), *args])
        return subprocess.run(command, capture_output=True, text=True, check=check)


def _start(folder: Path, binaries: Path) -> Server:
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable(f"no postgres system user to run the server as: {INSTALL_HINT}") from None
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    initdb = _as_server_user([str(binaries / "initdb"), "-D", str(folder / "data"), "-U", SUPERUSER,
                              "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
    done = subprocess.run(initdb, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServerUnavailable(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding
        server = Server(folder, _free_port(), binaries)
        options = (f"-p {server.port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=40")
        started = server._pg_ctl("start", "-w", "-t", "60", "-l", str(folder / "server.log"), "-o", options,
                                 check=False)
        if started.returncode == 0:
            return server
        log = folder / "server.log"
        last_error = log.read_text(errors="replace")[-2000:] if log.exists() else started.stderr
    raise ServerUnavailable(f"the PostgreSQL server did not start: {last_error.strip()}")


@contextlib.contextmanager
def throwaway_server():
    """A running server for the length of the block; stopped and removed afterwards."""
    binaries = server_binaries()
    folder = Path(tempfile.mkdtemp(prefix="workbench-pg-"))
    server = None
    try:
        server = _start(folder, binaries)
        yield server
    finally:
        if server is not None:
            server._pg_ctl("stop", "-m", "immediate", "-w", check=False)
        shutil.rmtree(folder, ignore_errors=True)
