"""Publishing a locked run's statements: the default local target, SFTP and S3 targets on
real loopback servers, idempotent re-publishing, tampered drops, a target going down, payee
targets, and the refusal of a run that is not approved."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.drops import Drop
from pipelines.layout import DataDir
from pipelines.royalty import audit_ledger
from pipelines.royalty.run import run_period, transition
from pipelines.statements import FORMATS
from pipelines.statements.publish import (
    PublishError,
    default_opener,
    pending_runs,
    publish_run,
    runs_to_publish,
    summary,
)
from schemas.store import db
from schemas.store.models import Organisation
from schemas.store.statements import PublicationStatus, StatementPublication, StatementTarget
from tests.connectors.conftest import s3_server, sftp_server  # noqa: F401  (real servers)
from tests.servers.s3 import S3Server, free_ports
from tests.servers.sftp import SftpServer
from tests.statements.conftest import LockedPeriod, build_locked_period

FAST = {"retries": 3, "backoff": 0.01}


def org_slug(locked: LockedPeriod) -> str:
    with locked.factory() as s:
        return str(s.scalar(sa.select(Organisation.slug).where(Organisation.id == locked.org_id)))


def add_target(
    locked: LockedPeriod,
    name: str,
    url: str,
    formats: list[str],
    *,
    payee_id: int | None = None,
    secret_env: str | None = None,
) -> None:
    with db.transaction(locked.factory, actor="test") as s:
        s.add(
            StatementTarget(
                org_id=locked.org_id,
                name=name,
                url=url,
                formats=formats,
                payee_id=payee_id,
                secret_env=secret_env,
                enabled=True,
            )
        )


def publication(locked: LockedPeriod, target: str) -> StatementPublication:
    with locked.factory() as s:
        row = s.scalars(
            sa.select(StatementPublication)
            .join(StatementTarget, StatementTarget.id == StatementPublication.target_id)
            .where(StatementTarget.name == target, StatementPublication.run_id == locked.run_id)
        ).one()
        s.expunge(row)
        return row


def publish(locked: LockedPeriod, *targets: str, **kwargs: Any) -> Any:
    results = publish_run(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        period=locked.period,
        actor="test",
        target_names=list(targets) or None,
        **{**FAST, **kwargs},
    )
    assert [r.target for r in results] == (list(targets) or [r.target for r in results])
    return results


def check_drop(root: Path, folder: str) -> dict[str, Any]:
    """The drop's manifest, with every file it lists present and hashing as listed."""
    manifest = json.loads((root / folder / "manifest.json").read_bytes())
    for f in manifest["files"]:
        body = (root / folder / f["path"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == f["sha256"]
        assert len(body) == f["size"]
    return manifest


class CountingOpener:
    """Opens the real drops and counts what is written to them."""

    def __init__(self, data_dir: Path, on_put: Callable[[int], None] | None = None) -> None:
        self.inner = default_opener(data_dir)
        self.puts: list[str] = []
        self.on_put = on_put

    def __call__(self, url: str, secret_env: str | None) -> Drop:
        drop = self.inner(url, secret_env)
        put = drop.put

        def counted(name: str, data: bytes | Path) -> None:
            if self.on_put is not None:
                self.on_put(len(self.puts))
            put(name, data)
            self.puts.append(name)

        drop.put = counted  # type: ignore[method-assign]
        return drop


# --- the default local target ---------------------------------------------------------------------
def test_default_local_target_gets_every_file_and_a_verifiable_manifest(
    locked: LockedPeriod,
) -> None:
    with db.transaction(locked.factory, actor="test") as s:  # start from an org without targets
        s.execute(sa.delete(StatementTarget).where(StatementTarget.org_id == locked.org_id))
    slug = org_slug(locked)
    outbound = locked.data / "outbound" / f"org={slug}"
    shutil.rmtree(outbound, ignore_errors=True)
    assert [r["run_id"] for r in pending_runs(locked.factory)] == [locked.run_id]

    (result,) = publish(locked)
    assert (result.target, result.status, result.folder) == ("local", "published", "2026-H1/v1")
    assert result.url == str(outbound) and result.error is None
    manifest = check_drop(outbound, "2026-H1/v1")
    assert manifest["run_id"] == locked.run_id and manifest["version"] == 1
    assert manifest["org"] == slug and manifest["period"] == "2026-H1"
    assert manifest["payee_id"] is None
    assert "published_at" not in manifest  # the bytes depend on the run only
    payees = set(locked.statement_ids())
    assert {f["payee_id"] for f in manifest["files"]} == payees
    assert {f["format"] for f in manifest["files"] if f["kind"] == "statement"} == set(FORMATS)
    assert (
        result.files
        == len(manifest["files"])
        == len(payees) * len(FORMATS) + sum(f["kind"] == "invoice" for f in manifest["files"])
    )
    on_disk = {p.relative_to(outbound).as_posix() for p in outbound.rglob("*") if p.is_file()}
    assert on_disk == {f"2026-H1/v1/{f['path']}" for f in manifest["files"]} | {
        "2026-H1/v1/manifest.json"
    }
    # The local export it was published from holds the same bytes.
    local = DataDir(locked.data).statements(locked.org_id, "2026-H1", 1)
    for f in manifest["files"]:
        assert (local / f["path"]).read_bytes() == (
            outbound / "2026-H1/v1" / f["path"]
        ).read_bytes()

    manifest_sha = hashlib.sha256((outbound / "2026-H1/v1/manifest.json").read_bytes()).hexdigest()
    row = publication(locked, "local")
    assert row.status.value == "published" and row.attempts == 1
    assert row.manifest_sha256 == manifest_sha == result.manifest_sha256
    assert row.published_at is not None and row.created_by == "test"
    assert len(row.files) == result.files
    with locked.factory() as s:
        target = s.scalars(sa.select(StatementTarget).where(StatementTarget.name == "local")).one()
        assert target.url == str(outbound) and target.payee_id is None
    assert pending_runs(locked.factory) == []
    (event,) = [
        e for e in audit_ledger.read(locked.data, locked.org_id) if e["event"] == "published"
    ]
    assert event["manifest_sha256"] == manifest_sha and event["target"] == "local"
    assert audit_ledger.verify(locked.data, locked.org_id) == []
    assert "| local | published |" in summary([{"org": slug, **result.as_dict()}]).replace(
        " 2026-H1 | v1 |", ""
    ).replace(f" {slug} |", "")


def test_republishing_uploads_nothing(locked: LockedPeriod) -> None:
    outbound = locked.data / "outbound" / f"org={org_slug(locked)}"
    before = {p: p.stat().st_mtime_ns for p in outbound.rglob("*") if p.is_file()}
    published_at = publication(locked, "local").published_at
    opener = CountingOpener(locked.data)
    (result,) = publish(locked, "local", opener=opener)
    assert result.status == "unchanged" and result.error is None
    assert opener.puts == []
    assert {p: p.stat().st_mtime_ns for p in outbound.rglob("*") if p.is_file()} == before
    row = publication(locked, "local")
    assert row.status.value == "published" and row.attempts == 2
    assert row.published_at == published_at  # first publication time kept
    assert (
        sum(e["event"] == "published" for e in audit_ledger.read(locked.data, locked.org_id)) == 1
    )


def test_a_tampered_drop_is_refused_and_left_alone(locked: LockedPeriod, tmp_path: Path) -> None:
    root = tmp_path / "label-drop"
    add_target(locked, "tamper", str(root), ["csv", "json"])
    (first,) = publish(locked, "tamper")
    assert first.status == "published"
    manifest = check_drop(root, "2026-H1/v1")
    victim = root / "2026-H1/v1" / manifest["files"][0]["path"]
    victim.write_bytes(b"payee,amount\nsomeone,1000000.00\n")
    opener = CountingOpener(locked.data)
    (again,) = publish(locked, "tamper", opener=opener)
    assert again.status == "refused" and opener.puts == []
    assert again.error is not None and again.error["code"] == "remote_differs"
    assert again.error["files"] == [f"2026-H1/v1/{manifest['files'][0]['path']}"]
    assert victim.read_bytes() == b"payee,amount\nsomeone,1000000.00\n"  # not replaced
    row = publication(locked, "tamper")
    assert row.status.value == "failed" and row.error is not None
    assert row.error["code"] == "remote_differs"

    # A foreign manifest is refused the same way, even with every file intact.
    victim.write_bytes(
        (
            DataDir(locked.data).statements(locked.org_id, "2026-H1", 1)
            / manifest["files"][0]["path"]
        ).read_bytes()
    )
    (root / "2026-H1/v1/manifest.json").write_text("{}\n")
    (third,) = publish(locked, "tamper")
    assert third.status == "refused" and third.error is not None
    assert third.error["files"] == ["2026-H1/v1/manifest.json"]
    assert (root / "2026-H1/v1/manifest.json").read_text() == "{}\n"


def test_a_payee_target_gets_only_that_payees_files(locked: LockedPeriod, tmp_path: Path) -> None:
    kofi = locked.payee_id("Kofi Mensah")
    root = tmp_path / "kofi-manager"
    add_target(locked, "kofi-manager", str(root), ["csv", "json"], payee_id=kofi)
    (result,) = publish(locked, "kofi-manager")
    assert result.status == "published"
    manifest = check_drop(root, "2026-H1/v1")
    assert manifest["payee_id"] == kofi
    assert {f["payee_id"] for f in manifest["files"]} == {kofi}
    assert sorted(f["format"] for f in manifest["files"]) == ["csv", "json"]
    assert [p.name for p in (root / "2026-H1/v1").iterdir() if p.is_dir()] == [f"payee{kofi}"]
    assert result.files == 2


# --- remote targets on real servers -----------------------------------------------------------
@pytest.mark.integration
def test_sftp_target(
    locked: LockedPeriod,
    sftp_server: SftpServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (sftp_server.root / "statements").mkdir()
    monkeypatch.setenv("TM_TEST_SFTP_PASSWORD", sftp_server.password)
    monkeypatch.setenv(
        "TUNEMANTRA_SFTP_KNOWN_HOSTS", str(sftp_server.write_known_hosts(tmp_path / "kh"))
    )
    url = f"sftp://{sftp_server.username}@{sftp_server.host}:{sftp_server.port}/statements"
    add_target(locked, "sftp", url, ["csv", "json"], secret_env="TM_TEST_SFTP_PASSWORD")
    (result,) = publish(locked, "sftp")
    assert result.status == "published" and result.url == url
    manifest = check_drop(sftp_server.root / "statements", "2026-H1/v1")
    assert {f["payee_id"] for f in manifest["files"]} == set(locked.statement_ids())
    opener = CountingOpener(locked.data)
    (again,) = publish(locked, "sftp", opener=opener)
    assert again.status == "unchanged" and opener.puts == []
    assert again.manifest_sha256 == result.manifest_sha256


@pytest.mark.integration
def test_s3_target(
    locked: LockedPeriod,
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bucket = s3_server.create_bucket("statements-out")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    monkeypatch.setenv("TM_TEST_S3", f"{s3_server.access_key}:{s3_server.secret_key}")
    add_target(locked, "s3", f"s3://{bucket}/northbound", ["json"], secret_env="TM_TEST_S3")
    (result,) = publish(locked, "s3")
    assert result.status == "published", result.error
    client = s3_server.client()
    try:
        keys = {
            o["Key"]: o["Size"]
            for o in client.list_objects_v2(Bucket=bucket, Prefix="northbound/")["Contents"]
        }
        body = client.get_object(Bucket=bucket, Key="northbound/2026-H1/v1/manifest.json")
        manifest = json.loads(body["Body"].read())
        for f in manifest["files"]:
            obj = client.get_object(Bucket=bucket, Key=f"northbound/2026-H1/v1/{f['path']}")
            assert hashlib.sha256(obj["Body"].read()).hexdigest() == f["sha256"]
    finally:
        client.close()
    assert len(keys) == len(manifest["files"]) + 1 == len(locked.statement_ids()) + 1
    (again,) = publish(locked, "s3")
    assert again.status == "unchanged"


# --- a target that is down ------------------------------------------------------------------------
def test_a_closed_port_is_retried_with_backoff_then_failed(locked: LockedPeriod) -> None:
    (port,) = free_ports(1)
    add_target(locked, "down", f"sftp://nobody@127.0.0.1:{port}/x", ["csv"])
    slept: list[float] = []
    (result,) = publish(locked, "down", sleep=slept.append)
    assert result.status == "failed"
    assert result.error == {
        "code": "unreachable",
        "target": "down",
        "path": "2026-H1/v1",
        "message": result.error["message"] if result.error else "",
        "attempts": 3,
    }
    assert slept == [0.01, 0.02]  # exponential back-off
    row = publication(locked, "down")
    assert row.status.value == "failed" and row.error == result.error
    assert row.manifest_sha256 == "" and row.published_at is None


@pytest.mark.integration
def test_a_server_going_down_mid_upload_leaves_no_manifest(
    locked: LockedPeriod, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = SftpServer.start()
    try:
        (server.root / "out").mkdir()
        monkeypatch.setenv("TM_TEST_SFTP_PASSWORD", server.password)
        monkeypatch.setenv(
            "TUNEMANTRA_SFTP_KNOWN_HOSTS", str(server.write_known_hosts(tmp_path / "kh"))
        )
        url = f"sftp://{server.username}@{server.host}:{server.port}/out"
        add_target(locked, "flaky", url, ["csv"], secret_env="TM_TEST_SFTP_PASSWORD")

        def down(done: int) -> None:
            if done == 2:  # two files are up: the server goes away (root kept)
                asyncio.run_coroutine_threadsafe(server._close(), server._loop).result(10)

        opener = CountingOpener(locked.data, on_put=down)
        slept: list[float] = []
        (result,) = publish(locked, "flaky", opener=opener, sleep=slept.append)
        assert result.status == "failed" and result.error is not None
        assert result.error["code"] == "unreachable" and result.error["attempts"] == 3
        assert result.error["path"].startswith("2026-H1/v1/payee")
        assert slept == [0.01, 0.02]
        drop = server.root / "out" / "2026-H1" / "v1"
        assert len(list(drop.rglob("*.csv"))) == 2
        assert not (drop / "manifest.json").exists()  # not published
        row = publication(locked, "flaky")
        assert row.status.value == "failed" and row.error == result.error
    finally:
        server.stop()


def test_one_failing_target_does_not_stop_the_others(locked: LockedPeriod, tmp_path: Path) -> None:
    (port,) = free_ports(1)
    add_target(locked, "down2", f"sftp://nobody@127.0.0.1:{port}/x", ["csv"])
    add_target(locked, "ok2", str(tmp_path / "ok2"), ["csv"])
    results = publish(locked, "down2", "ok2", sleep=lambda _: None)
    assert [r.status for r in results] == ["failed", "published"]
    check_drop(tmp_path / "ok2", "2026-H1/v1")
    # The run stays pending while a target has not received it: the next DAG run retries.
    assert [r["run_id"] for r in pending_runs(locked.factory)] == [locked.run_id]
    with db.transaction(locked.factory, actor="test") as s:
        s.execute(
            sa.update(StatementTarget).where(StatementTarget.name == "down2").values(enabled=False)
        )


def test_an_unknown_target_is_refused(locked: LockedPeriod) -> None:
    with pytest.raises(PublishError) as err:
        publish(locked, "nope")
    assert err.value.code == "target_missing"


# --- runs that are not published --------------------------------------------------------------
@pytest.fixture(scope="module")
def calculated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LockedPeriod]:
    period = build_locked_period(tmp_path_factory.mktemp("calculated"), lock=False)
    yield period
    period.factory.kw["bind"].dispose()


def test_a_calculated_run_is_not_published(calculated: LockedPeriod) -> None:
    with pytest.raises(PublishError) as err:
        publish_run(
            calculated.factory,
            calculated.data,
            org_id=calculated.org_id,
            period=calculated.period,
            actor="test",
        )
    assert err.value.code == "run_not_approved"
    assert "calculated" in err.value.message and "tunemantra royalty approve" in err.value.message
    with calculated.factory() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(StatementTarget)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(StatementPublication)) == 0
    assert not (calculated.data / "outbound").exists()
    assert not (calculated.data / "statements").exists()
    assert pending_runs(calculated.factory) == []


def select_published_targets(s: Any, run_id: int) -> list[int]:
    return list(
        s.scalars(
            sa.select(StatementPublication.target_id).where(
                StatementPublication.run_id == run_id,
                StatementPublication.status == PublicationStatus.PUBLISHED,
            )
        )
    )


def test_which_runs_a_dag_run_publishes(locked: LockedPeriod) -> None:
    slug = org_slug(locked)
    run = {"org": slug, "org_id": locked.org_id, "period": "2026-H1", "version": 1}
    event = {"org": slug, "period": "2026-H1", "run_id": locked.run_id}
    assert runs_to_publish(locked.factory, "", "", [event, event]) == [
        {**run, "run_id": locked.run_id}
    ]
    assert runs_to_publish(locked.factory, slug, "2026-H1") == [{**run, "run_id": locked.run_id}]
    # An event without org/period: the pending runs (here: targets earlier tests left failed).
    assert runs_to_publish(locked.factory, "", "", [{}]) == pending_runs(locked.factory)
    with db.transaction(locked.factory, actor="test") as s:
        done = select_published_targets(s, locked.run_id)
        s.execute(
            sa.update(StatementTarget)
            .where(StatementTarget.org_id == locked.org_id, StatementTarget.id.not_in(done))
            .values(enabled=False)
        )
    # Every enabled target has the run: nothing to do.
    assert runs_to_publish(locked.factory, "", "", [{}]) == []
    with pytest.raises(PublishError) as err:
        runs_to_publish(locked.factory, "nope", "2026-H1")
    assert err.value.code == "org_missing"


def test_a_correction_goes_to_its_own_folder(tmp_path: Path) -> None:
    # Its own period: a correction adds a version the other tests must not see.
    locked = build_locked_period(tmp_path)
    publish(locked, "local")
    outbound = locked.data / "outbound" / f"org={org_slug(locked)}"
    before = {p: p.stat().st_mtime_ns for p in (outbound / "2026-H1/v1").rglob("*")}
    report = run_period(
        locked.factory,
        locked.data,
        org_id=locked.org_id,
        period="2026-H1",
        actor="finance",
        correction="late report from a DSP",
    )
    assert report.version == 2
    with pytest.raises(PublishError) as err:  # calculated, not approved yet
        publish(locked, "local")
    assert err.value.code == "run_not_approved"
    for to in ("approved", "locked"):
        transition(
            locked.factory, locked.data, org_id=locked.org_id, period="2026-H1", actor="f", to=to
        )
    (result,) = publish(locked, "local")
    assert (result.status, result.folder, result.version) == ("published", "2026-H1/v2", 2)
    manifest = check_drop(outbound, "2026-H1/v2")
    assert manifest["version"] == 2 and manifest["run_id"] == report.run_id
    assert all("_v2_" in f["path"] for f in manifest["files"])
    assert {p: p.stat().st_mtime_ns for p in (outbound / "2026-H1/v1").rglob("*")} == before
    # The first version can still be re-published (unchanged); it is locked, not superseded.
    (v1,) = publish(locked, "local", version=1)
    assert v1.status == "unchanged" and v1.folder == "2026-H1/v1"
