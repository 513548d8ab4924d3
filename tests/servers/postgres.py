"""A throwaway PostgreSQL server on loopback for the test session (no Docker needed).

Finds the server binaries of the Debian package (``/usr/lib/postgresql/<v>/bin``), runs
``initdb`` as the ``postgres`` user when the tests run as root (initdb refuses root), starts
it on a free loopback port with its socket in its own folder, and stops it afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_DB = "tm_template"  # the migrated database each test's database is copied from


def find_bindir() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    bindir: Path
    datadir: Path
    port: int
    as_user: str | None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    @classmethod
    def start(cls) -> PostgresServer:
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found; `make test` installs them "
                "(apt-get install -y postgresql)"
            )
        root = Path(tempfile.mkdtemp(prefix="tunemantra-pg-"))
        as_user = "postgres" if os.geteuid() == 0 else None
        if as_user:
            shutil.chown(root, user=as_user)
        server = cls(bindir, root / "data", free_port(), as_user)
        server._run(
            "initdb",
            "-D",
            str(server.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        server._run(
            "pg_ctl",
            "-D",
            str(server.datadir),
            "-l",
            str(root / "server.log"),
            "-w",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off",
            "start",
        )
        return server

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.datadir.parent, ignore_errors=True)
