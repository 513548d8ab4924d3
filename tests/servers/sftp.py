"""A throwaway SFTP server on loopback for the test session (asyncssh, no sshd needed).

Runs asyncssh's SFTP server in a background thread with its own event loop, on 127.0.0.1 at a
free port, confined (``SFTPServer(chroot=...)``) to a temporary folder. Password login only,
with a generated user name and password; a generated Ed25519 host key, which
:meth:`SftpServer.write_known_hosts` writes out so clients can verify the host.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

HOST = "127.0.0.1"


class _PasswordServer(asyncssh.SSHServer):
    """Accepts exactly one user name and password; no other authentication."""

    def __init__(
        self, username: str, password: str, live: set[asyncssh.SSHServerConnection]
    ) -> None:
        self._username = username.encode()
        self._password = password.encode()
        self._live = live
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._live.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._live.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        user_ok = hmac.compare_digest(username.encode(), self._username)
        return hmac.compare_digest(password.encode(), self._password) and user_ok


@dataclass
class SftpServer:
    """A running server: connect to ``host``:``port`` as ``username``/``password``."""

    root: Path
    username: str
    password: str
    host_key: asyncssh.SSHKey
    host: str = HOST
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _acceptor: asyncssh.SSHAcceptor | None = None
    _live: set[asyncssh.SSHServerConnection] = field(default_factory=set)

    @classmethod
    def start(cls, timeout: float = 10.0) -> SftpServer:
        """Start serving a fresh temporary folder; returns once the port is listening."""
        root = Path(tempfile.mkdtemp(prefix="tunemantra-sftp-")).resolve()
        server = cls(
            root=root,
            username=f"tm-{secrets.token_hex(4)}",
            password=secrets.token_urlsafe(16),
            host_key=asyncssh.generate_private_key("ssh-ed25519"),
        )
        server._thread = threading.Thread(
            target=server._loop.run_forever, name="sftp-test-server", daemon=True
        )
        server._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(server._listen(), server._loop).result(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    async def _listen(self) -> None:
        chroot = os.fsencode(self.root)
        self._acceptor = await asyncssh.listen(
            self.host,
            0,
            server_host_keys=[self.host_key],
            server_factory=lambda: _PasswordServer(self.username, self.password, self._live),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=chroot),
            allow_scp=False,
            agent_forwarding=False,
        )
        self.port = self._acceptor.get_port()

    @property
    def known_hosts_line(self) -> str:
        """This server's entry for an OpenSSH known_hosts file."""
        algorithm, key = self.host_key.export_public_key("openssh").decode().split()[:2]
        return f"[{self.host}]:{self.port} {algorithm} {key}\n"

    def write_known_hosts(self, path: Path) -> Path:
        """Write a known_hosts file that trusts only this server."""
        path.write_text(self.known_hosts_line)
        return path

    def url(self, path: str = "/") -> str:
        """An ``sftp://`` URL with the credentials in it."""
        return f"sftp://{self.username}:{self.password}@{self.host}:{self.port}{path}"

    async def _close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
        for conn in list(self._live):
            conn.close()
            await conn.wait_closed()
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Close the listener and its connections, stop the thread, delete the folder."""
        try:
            if self._thread is not None and self._thread.is_alive():
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout)
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout)
            if not self._loop.is_running():
                self._loop.close()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
