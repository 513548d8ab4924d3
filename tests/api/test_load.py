"""The API under load and under a busy store: reads never wait for a writer (SQLite WAL, no
write lock for a read), a write that cannot get the store answers 503 with Retry-After after
a bounded wait (an HTML page on the portal), 64 concurrent requests on a real uvicorn all get
an answer, and the CLI says that another command holds the store."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.portal import COOKIE
from cli.main import app as cli_app
from pipelines import resources
from pipelines.settings import get_settings
from schemas.store import db
from schemas.store.models import Role
from tests.conftest import SECRET, Tenant, make_org


@pytest.fixture
def sqlite_path(sqlite_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    path.write_bytes(sqlite_template.read_bytes())
    return path


@pytest.fixture
def tenant(sqlite_path: Path) -> Iterator[Tenant]:
    """A tenant on a SQLite store whose writers give up after half a second."""
    engine = db.make_engine(f"sqlite:///{sqlite_path}", busy_timeout=0.5)
    factory = db.session_factory(engine)
    with TestClient(create_app(factory, secret_key=SECRET)) as client:
        yield Tenant(make_org(factory, "label-a"), client, factory)
    engine.dispose()


class WriteLock:
    """Another connection holding SQLite's write lock (as an ingestion's commit does)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def __enter__(self) -> WriteLock:
        self.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


def test_reads_proceed_while_a_writer_holds_the_store(tenant: Tenant, sqlite_path: Path) -> None:
    artist = tenant.post("/v1/artists", {"name": "Ada"})
    payee = tenant.post("/v1/payees", {"name": "Mara", "statement_currency": "EUR"})
    payee_key = tenant.key(Role.PAYEE, payee["id"])
    with WriteLock(sqlite_path):
        for path in ("/healthz", "/v1/artists", f"/v1/artists/{artist['id']}", "/v1/me"):
            # a read that waited for the writer would wait the busy timeout (0.5 s) and
            # answer 503: a 200 here is a read that did not take the write lock (no timing)
            r = tenant.client.get(path, headers=tenant.admin)
            assert r.status_code == 200, (path, r.text)
        statements = tenant.client.get("/v1/statements", headers=payee_key)
        assert statements.status_code == 200, statements.text
        signed_in = tenant.client.post(
            "/portal/", data={"api_key": payee_key["X-API-Key"]}, follow_redirects=False
        )
        assert signed_in.status_code == 303


def test_a_write_on_a_busy_store_answers_503_with_retry_after(
    tenant: Tenant, sqlite_path: Path
) -> None:
    headers = tenant.admin  # the key exists before the store gets busy
    with WriteLock(sqlite_path):
        start = time.perf_counter()
        r = tenant.client.post("/v1/artists", json={"name": "Ada"}, headers=headers)
        waited = time.perf_counter() - start
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["title"] == "Busy"
    assert 0.4 <= waited < 5  # the bounded wait (busy timeout), not at once, not for ever
    assert tenant.client.get("/v1/artists", headers=tenant.admin).json()["items"] == []


def test_the_portal_answers_a_busy_store_with_a_page(tenant: Tenant, sqlite_path: Path) -> None:
    payee = tenant.post("/v1/payees", {"name": "Mara", "statement_currency": "EUR"})
    key = tenant.key(Role.PAYEE, payee["id"])["X-API-Key"]
    signed_in = tenant.client.post("/portal/", data={"api_key": key}, follow_redirects=False)
    token = signed_in.cookies[COOKIE]
    with WriteLock(sqlite_path):
        r = tenant.client.post(
            "/portal/logout", headers={"Cookie": f"{COOKIE}={token}"}, follow_redirects=False
        )
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("text/html")
    assert int(r.headers["retry-after"]) >= 1
    assert "<html" in r.text.lower() and "try again" in r.text.lower()


def test_sign_out_revokes_the_session_server_side(tenant: Tenant) -> None:
    payee = tenant.post("/v1/payees", {"name": "Mara", "statement_currency": "EUR"})
    key = tenant.key(Role.PAYEE, payee["id"])["X-API-Key"]
    client = tenant.client

    def signed_in(token: str) -> bool:
        r = client.get("/portal/", headers={"Cookie": f"{COOKIE}={token}"}, follow_redirects=False)
        return r.status_code == 303 and r.headers["location"] == "/portal/statements"

    first = client.post("/portal/", data={"api_key": key}, follow_redirects=False).cookies[COOKIE]
    client.cookies.clear()
    assert signed_in(first)
    out = client.post(
        "/portal/logout", headers={"Cookie": f"{COOKIE}={first}"}, follow_redirects=False
    )
    assert out.status_code == 303
    assert not signed_in(first)  # the old cookie replayed: signed out
    statements = client.get(
        "/portal/statements", headers={"Cookie": f"{COOKIE}={first}"}, follow_redirects=False
    )
    assert statements.headers["location"] == "/portal/"
    client.cookies.clear()
    # signing in again works, and that new session is not the old one
    second = client.post("/portal/", data={"api_key": key}, follow_redirects=False)
    client.cookies.clear()
    assert signed_in(second.cookies[COOKIE])
    assert not signed_in(first)
    # a forged sign-out (no valid cookie) changes nothing
    client.post("/portal/logout", headers={"Cookie": f"{COOKIE}=1.9999999999.00"})
    client.cookies.clear()
    assert signed_in(second.cookies[COOKIE])


def test_revoking_a_key_ends_its_portal_sessions(
    tenant: Tenant, sqlite_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tunemantra apikey revoke``: the key's signed-in portal session ends at once, and the
    key is listed as revoked (only with --all)."""
    payee = tenant.post("/v1/payees", {"name": "Mara", "statement_currency": "EUR"})
    key = tenant.key(Role.PAYEE, payee["id"])["X-API-Key"]
    prefix = key.split("_")[1]
    client = tenant.client
    token = client.post("/portal/", data={"api_key": key}, follow_redirects=False).cookies[COOKIE]
    client.cookies.clear()
    cookie = {"Cookie": f"{COOKIE}={token}"}
    assert (
        client.get("/portal/statements", headers=cookie, follow_redirects=False).status_code == 200
    )
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", f"sqlite:///{sqlite_path}")
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli_app, ["apikey", "list", "--org", "label-a", "--json"])
        assert listed.exit_code == 0, listed.output
        assert prefix in listed.output
        wrong_org = runner.invoke(cli_app, ["apikey", "revoke", prefix, "--org", "nope"])
        assert wrong_org.exit_code == 2
        done = runner.invoke(cli_app, ["apikey", "revoke", key, "--org", "label-a"])
        assert done.exit_code == 0, done.output
        assert f"revoked key {prefix}" in done.output
        live = runner.invoke(cli_app, ["apikey", "list", "--org", "label-a"]).output
        assert prefix not in live
        every = runner.invoke(cli_app, ["apikey", "list", "--org", "label-a", "--all"]).output
        assert prefix in every
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()
    r = client.get("/portal/statements", headers=cookie, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/portal/")
    assert client.get("/v1/me", headers={"X-API-Key": key}).status_code == 401


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_64_concurrent_requests_on_a_real_server_all_answer(
    tenant: Tenant, sqlite_path: Path
) -> None:
    artist = tenant.post("/v1/artists", {"name": "Ada"})
    headers = tenant.admin
    engine = db.make_engine(f"sqlite:///{sqlite_path}")
    application = create_app(db.session_factory(engine), secret_key=SECRET)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    paths = ["/healthz", "/v1/artists", f"/v1/artists/{artist['id']}", "/v1/me"]

    def client(n: int) -> list[tuple[int, float]]:
        out = []
        with httpx.Client(base_url=url, headers=headers, timeout=60) as c:
            for i in range(6):
                start = time.perf_counter()
                r = c.get(paths[(n + i) % len(paths)])
                out.append((r.status_code, time.perf_counter() - start))
        return out

    try:
        with ThreadPoolExecutor(64) as pool:
            results = [r for rs in pool.map(client, range(64)) for r in rs]
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    statuses = [s for s, _ in results]
    assert len(statuses) == 64 * 6
    assert all(s == 200 for s in statuses), sorted(set(statuses))
    assert max(t for _, t in results) < 10


def test_the_cli_says_another_command_holds_the_store(
    sqlite_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", f"sqlite:///{sqlite_path}")
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TUNEMANTRA_BUSY_TIMEOUT", "0.5")
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    try:
        with WriteLock(sqlite_path):
            start = time.perf_counter()
            result = CliRunner().invoke(cli_app, ["org", "create", "acme", "--name", "Acme"])
            waited = time.perf_counter() - start
        assert result.exit_code == 3, result.output
        assert "another command holds the store" in result.output
        assert "Traceback" not in result.output
        assert 0.4 <= waited < 5
        ok = CliRunner().invoke(cli_app, ["org", "create", "acme", "--name", "Acme"])
        assert ok.exit_code == 0, ok.output
    finally:
        get_settings.cache_clear()
        resources.engine_for.cache_clear()
    engine = sa.create_engine(f"sqlite:///{sqlite_path}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM organisations")).scalar() == 1
    engine.dispose()


def test_every_read_gives_its_store_connection_back_before_its_answer(tenant: Tenant) -> None:
    """A read ends its transaction in its handler's pool hop (``read_in_pool``) and the
    session dependency closes it on the event loop: no connection may be left checked out,
    after a found row, a page, a 404 or a 401 alike."""
    engine = tenant.factory.kw["bind"]
    artist = tenant.post("/v1/artists", {"name": "Pooled"})
    reads = [
        ("/healthz", None, 200),
        ("/v1/me", tenant.admin, 200),
        ("/v1/artists?limit=5", tenant.admin, 200),
        (f"/v1/artists/{artist['id']}", tenant.admin, 200),
        (f"/v1/artists/{artist['id'] + 1000}", tenant.admin, 404),
        ("/v1/artists", {"X-API-Key": "tm_nope_nope"}, 401),
    ]
    for path, headers, status in reads:
        r = tenant.client.get(path, headers=headers or {})
        assert r.status_code == status, (path, r.text)
        assert engine.pool.checkedout() == 0, path
    assert tenant.client.get(f"/v1/artists/{artist['id']}", headers=tenant.admin).json() == artist
