"""Shared fixtures: the store on SQLite and on a real PostgreSQL server, the API client."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import settings
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from schemas.store import db
from schemas.store.keys import issue_key
from schemas.store.models import Organisation, Role
from tests.servers.postgres import TEMPLATE_DB, PostgresServer

# The real servers (PostgreSQL, SFTP, S3, Chromium): one definition each, one per session;
# and states of the sample label built once per session and copied per test.
pytest_plugins = ["tests.servers.plugin", "tests.snapshots"]

SECRET = "test-secret-key-not-a-placeholder"
_db_names = itertools.count()


SERVERS = {"postgres", "sftp_server", "s3_server", "chromium"}  # tests/servers/plugin.py

# Hypothesis: a property test asks for ``examples(n)``: n examples under the default profile
# (``make test``), a quarter of them (at least 5) under the "dev" profile, which the unit tier
# (a marker expression that leaves out slow tests, as ``make test-fast``) loads unless
# ``--hypothesis-profile`` names another.
settings.register_profile("dev", max_examples=25)


def examples(n: int) -> int:
    """``max_examples`` for a property test that tries ``n`` examples in the full suite."""
    return max(5, n * settings.default.max_examples // 100)


def pytest_configure(config: pytest.Config) -> None:
    leaves_out_slow = "not slow" in (config.option.markexpr or "")
    if leaves_out_slow and not config.getoption("hypothesis_profile", None):
        settings.load_profile("dev")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts or uses a real server is in the integration tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgresql"
        if on_postgres or SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    return path


# The store's own tests (tests/schemas: models, service, imports, types, concurrency,
# migrations) and the API's (tenancy, concurrency, error mapping) run on both backends. Every
# other test that uses the store runs on SQLite only: the pipelines above the store do not
# depend on the database, and a few end-to-end tests name both backends themselves
# (``@pytest.mark.parametrize("backend", BOTH_BACKENDS)``).
BOTH_BACKENDS = ["sqlite", "postgresql"]
TESTS_ON_BOTH_BACKENDS = ("schemas", "api")
_TESTS = Path(__file__).resolve().parent


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    defs = metafunc._arg2fixturedefs.get("backend")
    if not defs or getattr(defs[-1].func, "__module__", None) != __name__:
        return  # no store, or another kind of backend (drops: local, s3, sftp)
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "backend" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return  # the test names its backends itself
    path = metafunc.definition.path.resolve()
    both = path.is_relative_to(_TESTS) and path.relative_to(_TESTS).parts[0] in (
        TESTS_ON_BOTH_BACKENDS
    )
    metafunc.parametrize("backend", BOTH_BACKENDS if both else ["sqlite"], indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store's backend: "sqlite" or "postgresql" (see ``pytest_generate_tests``)."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database for one test, on the backend under test."""
    if backend == "sqlite":
        path = tmp_path / "store.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"tm_test_{next(_db_names)}"
    admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE_DB}'))
    admin.dispose()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = db.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: sa.Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session inside a transaction that each test may commit."""
    with factory() as s:
        s.info["actor"] = "test"
        yield s


def make_org(factory: sessionmaker[Session], slug: str) -> int:
    with db.transaction(factory, actor="test") as s:
        org = Organisation(slug=slug, name=slug.title())
        s.add(org)
        s.flush()
        return org.id


def tenant_org(factory: sessionmaker[Session], slug: str) -> int:
    """The organisation ``slug``: made, unless the store came with it (a copied snapshot)."""
    with factory() as s:
        org_id = s.scalar(sa.select(Organisation.id).where(Organisation.slug == slug))
    return org_id if org_id is not None else make_org(factory, slug)


@pytest.fixture
def org_id(factory: sessionmaker[Session]) -> int:
    return make_org(factory, "acme")


@dataclass
class Tenant:
    org_id: int
    client: TestClient
    factory: sessionmaker[Session]

    def key(self, role: Role, payee_id: int | None = None) -> dict[str, str]:
        with db.transaction(self.factory, actor="test") as s:
            _, plain = issue_key(
                s, org_id=self.org_id, role=role, payee_id=payee_id, secret_key=SECRET
            )
        return {"X-API-Key": plain}

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        r = self.client.post(path, json=body, headers=headers or self.admin)
        assert r.status_code == 201, r.text
        return r.json()

    @property
    def admin(self) -> dict[str, str]:
        if not hasattr(self, "_admin"):
            self._admin = self.key(Role.ADMIN)
        return self._admin


@pytest.fixture
def client(factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(factory, secret_key=SECRET)) as c:
        yield c


@pytest.fixture
def tenant_a(factory: sessionmaker[Session], client: TestClient) -> Tenant:
    return Tenant(tenant_org(factory, "label-a"), client, factory)


@pytest.fixture
def tenant_b(factory: sessionmaker[Session], client: TestClient) -> Tenant:
    return Tenant(tenant_org(factory, "label-b"), client, factory)
