"""``tunemantra statements ...`` through the real CLI, pointed at a locked period's store by
TUNEMANTRA_* settings: targets, exports (also a preview of a calculated run), publishing and
its exit codes, and ``bench statements``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from pipelines import resources
from pipelines.settings import get_settings
from schemas.store.models import Organisation
from tests.servers.s3 import free_ports
from tests.snapshots import Snapshots, sqlite_url
from tests.statements.conftest import LockedPeriod, copy_locked_period

runner = CliRunner()


def use_store(period: LockedPeriod, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI at ``period``'s store and data dir; return the org slug."""
    monkeypatch.setenv("TUNEMANTRA_DATABASE_URL", sqlite_url(period.data.parent))
    monkeypatch.setenv("TUNEMANTRA_DATA_DIR", str(period.data))
    monkeypatch.delenv("TUNEMANTRA_ENV", raising=False)
    get_settings.cache_clear()
    resources.engine_for.cache_clear()
    with period.factory() as s:
        return str(s.scalar(sa.select(Organisation.slug).where(Organisation.id == period.org_id)))


@pytest.fixture
def org(locked: LockedPeriod, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield use_store(locked, monkeypatch)
    resources.get_engine().dispose()
    get_settings.cache_clear()
    resources.engine_for.cache_clear()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def as_json(*args: str, code: int = 0) -> Any:
    return json.loads(run(*args, "--json", code=code).strip().splitlines()[-1])


def test_targets_are_added_checked_and_listed(
    org: str, locked: LockedPeriod, tmp_path: Path
) -> None:
    added = as_json(
        "statements", "target", "add", "--org", org, "--name", "archive",
        "--url", str(tmp_path / "archive"), "--format", "csv", "--format", "json",
    )  # fmt: skip
    assert added["name"] == "archive" and added["formats"] == ["csv", "json"]
    assert added["payee_id"] is None and added["enabled"] is True
    kofi = locked.payee_id("Kofi Mensah")
    run(
        "statements", "target", "add", "--org", org, "--name", "kofi",
        "--url", "sftp://kofi@files.example.com/in", "--secret-env", "KOFI_SFTP",
        "--payee", str(kofi), "--format", "pdf",
    )  # fmt: skip
    errors = {
        "target_exists": ["--name", "archive", "--url", str(tmp_path / "other")],
        "password_in_url": ["--name", "x1", "--url", "sftp://u:hunter2@h.example.com/in"],
        "bad_url": ["--name", "x2", "--url", "ftp://h.example.com/in"],
        "bad_format": ["--name", "x3", "--url", str(tmp_path), "--format", "docx"],
        "payee_missing": ["--name", "x4", "--url", str(tmp_path), "--payee", "999999"],
    }
    for code, args in errors.items():
        out = as_json("statements", "target", "add", "--org", org, *args, code=2)
        assert out["error"]["code"] == code, out
    assert "hunter2" not in json.dumps(as_json("statements", "target", "list", "--org", org))
    listed = as_json("statements", "target", "list", "--org", org)["targets"]
    assert [(t["name"], t["payee_id"], t["formats"]) for t in listed] == [
        ("archive", None, ["csv", "json"]),
        ("kofi", kofi, ["pdf"]),
    ]
    assert listed[1]["secret_env"] == "KOFI_SFTP"
    text = run("statements", "target", "list", "--org", org)
    assert "secret from $KOFI_SFTP" in text and f"payee {kofi}" in text
    missing = runner.invoke(app, ["statements", "target", "list", "--org", "nope"])
    assert missing.exit_code == 2 and "org_missing" in missing.output
    # Disable the SFTP one again for the publish test below (it is not reachable).
    from schemas.store import db
    from schemas.store.statements import StatementTarget

    with db.transaction(locked.factory, actor="test") as s:
        s.scalars(
            sa.select(StatementTarget).where(StatementTarget.name == "kofi")
        ).one().enabled = False


def test_export_writes_the_files_it_prints(org: str, locked: LockedPeriod, tmp_path: Path) -> None:
    out = tmp_path / "export"
    mara = locked.payee_id("Mara Ellison")
    doc = as_json(
        "statements", "export", "--org", org, "--period", "2026-H1", "--format", "csv",
        "--format", "json", "--payee", str(mara), "--out", str(out),
    )  # fmt: skip
    assert doc["status"] == "locked" and doc["version"] == 1 and doc["unchanged"] is False
    assert {f["format"] for f in doc["files"]} == {"csv", "json"}
    assert {f["payee_id"] for f in doc["files"]} == {mara}
    for f in doc["files"]:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"]
    assert (out / "manifest.json").is_file()
    again = run(
        "statements", "export", "--org", org, "--period", "2026-H1", "--format", "csv",
        "--format", "json", "--payee", str(mara), "--out", str(out),
    )  # fmt: skip
    assert "(unchanged)" in again and doc["files"][0]["path"] in again
    bad = as_json(
        "statements", "export", "--org", org, "--period", "2026-13", "--out", str(out), code=2
    )
    assert bad["error"]["code"] == "bad_period"
    none = as_json(
        "statements", "export", "--org", org, "--period", "2025-H1", "--out", str(out), code=2
    )
    assert none["error"]["code"] == "run_missing"


def test_publish_and_its_exit_codes(org: str, locked: LockedPeriod, tmp_path: Path) -> None:
    listed = as_json("statements", "target", "list", "--org", org)["targets"]
    if not any(t["name"] == "archive" for t in listed):  # this worker did not run the test above
        run(
            "statements", "target", "add", "--org", org, "--name", "archive",
            "--url", str(tmp_path / "archive"), "--format", "csv", "--format", "json",
        )  # fmt: skip
    listed = as_json("statements", "target", "list", "--org", org)["targets"]
    archive = Path(next(t["url"] for t in listed if t["name"] == "archive"))
    first = as_json("statements", "publish", "--org", org, "--period", "2026-H1")
    (result,) = first["results"]
    assert (result["target"], result["status"]) == ("archive", "published")
    manifest = json.loads((archive / "2026-H1/v1/manifest.json").read_bytes())
    assert len(manifest["files"]) == result["files"] == 2 * len(locked.statement_ids())
    text = run("statements", "publish", "--org", org, "--period", "2026-H1")
    assert "archive: unchanged: 2026-H1 v1" in text
    (port,) = free_ports(1)
    run(
        "statements", "target", "add", "--org", org, "--name", "down",
        "--url", f"sftp://nobody@127.0.0.1:{port}/in", "--format", "csv",
    )  # fmt: skip
    failed = as_json(
        "statements", "publish", "--org", org, "--period", "2026-H1", "--target", "down",
        "--retries", "2", "--backoff", "0", code=1,
    )  # fmt: skip
    (down,) = failed["results"]
    assert down["status"] == "failed" and down["error"]["code"] == "unreachable"
    assert down["error"]["attempts"] == 2
    unknown = as_json(
        "statements", "publish", "--org", org, "--period", "2026-H1", "--target", "nope", code=2
    )
    assert unknown["error"]["code"] == "target_missing"


@pytest.fixture
def calculated(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    snapshots: Snapshots,
) -> Iterator[tuple[LockedPeriod, str]]:
    period = copy_locked_period(
        snapshots, tmp_path_factory.mktemp("calculated") / "period", lock=False
    )
    yield period, use_store(period, monkeypatch)
    resources.get_engine().dispose()
    period.factory.kw["bind"].dispose()
    get_settings.cache_clear()
    resources.engine_for.cache_clear()


def test_a_calculated_run_exports_as_a_preview_but_is_not_published(
    calculated: tuple[LockedPeriod, str], tmp_path: Path
) -> None:
    period, org = calculated
    text = run(
        "statements", "export", "--org", org, "--period", "2026-H1", "--format", "json",
        "--out", str(tmp_path / "preview"),
    )  # fmt: skip
    assert "calculated (preview: the run is not approved)" in text
    files = list((tmp_path / "preview").rglob("*.json"))
    assert len(files) == len(period.statement_ids()) + 1  # + manifest.json
    refused = runner.invoke(app, ["statements", "publish", "--org", org, "--period", "2026-H1"])
    assert refused.exit_code == 2
    assert "run_not_approved" in refused.output and "tunemantra royalty approve" in refused.output
    assert not (period.data / "outbound").exists()


def test_bench_statements_reports_what_it_rendered() -> None:
    out = as_json("bench", "statements", "--payees", "2", "--workers", "1")
    assert out["payees"] == 2 and out["statements"] == 2
    assert out["files"] >= 2 * 4 and out["bytes"] > 0
