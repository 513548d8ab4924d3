"""Real servers for the connector tests: SFTP (asyncssh) and S3 (SeaweedFS), one per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer


@pytest.fixture(scope="session")
def sftp_server() -> Iterator[SftpServer]:
    """An SFTP server on 127.0.0.1, password login, rooted at a temporary folder."""
    server = SftpServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """``weed mini`` on 127.0.0.1 with a generated access key and secret."""
    server = S3Server.start()
    try:
        yield server
    finally:
        server.stop()
