"""The real servers the tests run against, each started at most once per test session (once per
xdist worker), on first use, and stopped at the end of the session.

Listed in the root conftest's ``pytest_plugins``: this is the only place that defines these
fixtures. A test module or conftest must not import them (an imported session fixture is a
second fixture, and starts a second server).

- ``postgres``: a PostgreSQL server with a migrated template database ``tm_template`` that each
  test's database is copied from (``db_url`` in the root conftest).
- ``sftp_server``: asyncssh's SFTP server, password login, rooted at a temporary folder.
- ``s3_server``: SeaweedFS ``weed mini`` with a generated access key; each test makes its own
  bucket.
- ``chromium``: headless Chromium driven by Selenium, downloading into ``chromium.downloads``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import sqlalchemy as sa

from schemas.store import db
from tests.servers.postgres import TEMPLATE_DB, PostgresServer
from tests.servers.s3 import S3Server
from tests.servers.sftp import SftpServer


class _Stoppable(Protocol):
    def stop(self) -> None: ...


S = TypeVar("S", bound=_Stoppable)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """PostgreSQL on 127.0.0.1 with the migrated template database ``tm_template``."""
    server = PostgresServer.start()
    try:
        template = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
        with template.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {TEMPLATE_DB}"))
        template.dispose()
        migrated = db.make_engine(server.url.rsplit("/", 1)[0] + f"/{TEMPLATE_DB}")
        db.upgrade(migrated)
        migrated.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sftp_server() -> Iterator[SftpServer]:
    """An SFTP server on 127.0.0.1, password login, rooted at a temporary folder."""
    yield from _until_the_end(SftpServer.start())


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """``weed mini`` on 127.0.0.1 with a generated access key and secret."""
    yield from _until_the_end(S3Server.start())


def _until_the_end(server: S) -> Iterator[S]:
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Chromium:
    """A headless Chromium (Selenium's ``webdriver.Chrome``) and the folder it downloads to."""

    driver: Any
    downloads: Path


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """Headless Chromium from the Debian packages (``make test`` installs them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )
    driver.implicitly_wait(5)
    try:
        yield Chromium(driver, downloads)
    finally:
        driver.quit()
