"""``/v1/statements`` and ``/v1/payees/{id}/balance-history`` on a locked period of the sample
label: lists, JSON, every download format (exact bytes), payee and tenant isolation, previews
of runs not approved yet, files served from the export folder only when they match.

``COVERED`` is read by test_tenancy.test_every_route_has_an_isolation_case."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.statements import statement_problem
from pipelines.layout import DataDir
from pipelines.statements import FORMATS, MEDIA_TYPES, render
from pipelines.statements.data import Statement, StatementError, load_statement
from pipelines.statements.export import MANIFEST, export_run
from pipelines.statements.tabular import statement_dict
from schemas.store import db
from schemas.store.keys import issue_key
from schemas.store.models import Role
from tests.conftest import make_org
from tests.statements.conftest import HOSTILE_TITLE, SECRET, LockedPeriod, build_locked_period

COVERED = {
    "GET /v1/statements",
    "GET /v1/statements/{}",
    "GET /v1/statements/{}/download",
}


@dataclass
class World:
    period: LockedPeriod
    client: TestClient
    keys: dict[str, dict[str, str]]  # admin, finance, analyst, mara, lena, other_org

    def statement(self, payee: str) -> Statement:
        sid = self.period.statement_ids()[self.period.payee_id(payee)]
        return load_statement(
            self.period.factory, self.period.data, org_id=self.period.org_id, statement_id=sid
        )

    def sid(self, payee: str) -> int:
        return self.period.statement_ids()[self.period.payee_id(payee)]


def _key(p: LockedPeriod, org_id: int, role: Role, payee: str | None = None) -> dict[str, str]:
    payee_id = p.payee_id(payee) if payee else None
    with db.transaction(p.factory, actor="test") as s:
        _, plain = issue_key(s, org_id=org_id, role=role, payee_id=payee_id, secret_key=SECRET)
    return {"X-API-Key": plain}


def _world(root: Path, *, lock: bool) -> Iterator[World]:
    p = build_locked_period(root, lock=lock)
    other_org = make_org(p.factory, "other-label")
    keys = {
        "admin": {"X-API-Key": p.admin_key},
        "finance": _key(p, p.org_id, Role.FINANCE),
        "analyst": _key(p, p.org_id, Role.ANALYST),
        "mara": _key(p, p.org_id, Role.PAYEE, "Mara Ellison"),
        "lena": _key(p, p.org_id, Role.PAYEE, "Lena Brandt"),
        "other_org": _key(p, other_org, Role.ADMIN),
    }
    with TestClient(create_app(p.factory, secret_key=SECRET, data_dir=p.data)) as client:
        yield World(p, client, keys)
    p.factory.kw["bind"].dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from _world(tmp_path_factory.mktemp("api-locked"), lock=True)


@pytest.fixture(scope="module")
def preview(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The same label with its period calculated but not approved."""
    yield from _world(tmp_path_factory.mktemp("api-calculated"), lock=False)


def _problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    return body


def test_list_pages_through_every_statement_of_the_run(world: World) -> None:
    c, admin = world.client, world.keys["admin"]
    seen: list[int] = []
    url = "/v1/statements?limit=4"
    while True:
        body = c.get(url, headers=admin).json()
        seen += [s["id"] for s in body["items"]]
        if body["next_cursor"] is None:
            break
        url = f"/v1/statements?limit=4&cursor={body['next_cursor']}"
    assert sorted(seen) == sorted(world.period.statement_ids().values())
    assert len(seen) == len(set(seen)) > 4
    mara = next(
        s
        for s in c.get("/v1/statements?limit=500", headers=admin).json()["items"]
        if s["id"] == world.sid("Mara Ellison")
    )
    st = world.statement("Mara Ellison")
    assert mara["payee_name"] == "Mara Ellison"
    assert (mara["period"], mara["run_status"], mara["currency"]) == ("2026-H1", "locked", "GBP")
    assert mara["figures"]["earnings"] == str(st.figures["earnings"])
    assert mara["figures"]["closing"] == str(st.figures["closing"])
    assert mara["links"]["csv"] == f"/v1/statements/{mara['id']}/download?format=csv"
    filtered = c.get(
        f"/v1/statements?payee_id={mara['payee_id']}&period=2026-H1&run_id={mara['run_id']}",
        headers=admin,
    ).json()
    assert [s["id"] for s in filtered["items"]] == [mara["id"]]
    assert c.get("/v1/statements?period=2025-H2", headers=admin).json()["items"] == []


def test_get_statement_is_the_json_statement_without_lines(world: World) -> None:
    sid = world.sid("Mara Ellison")
    r = world.client.get(f"/v1/statements/{sid}", headers=world.keys["finance"])
    assert r.status_code == 200, r.text
    body = r.json()
    links = body.pop("links")
    assert body == statement_dict(world.statement("Mara Ellison"), with_lines=False)
    assert "lines" not in body
    assert set(links) == set(FORMATS)  # Mara has nothing payable: no invoice link
    assert any(t["label"] == HOSTILE_TITLE for t in body["top_tracks"])


@pytest.mark.parametrize("fmt", FORMATS)
def test_download_is_the_rendered_file(world: World, fmt: str) -> None:
    st = world.statement("Mara Ellison")
    url = f"/v1/statements/{st.statement_id}/download?format={fmt}"
    r = world.client.get(url, headers=world.keys["mara"])
    assert r.status_code == 200, r.text
    assert r.content == render(st, fmt)
    assert r.headers["content-type"] == MEDIA_TYPES[fmt]
    assert f'filename="{st.file_stem}.{fmt}"' in r.headers["content-disposition"]
    assert r.headers["content-disposition"].startswith("attachment;")
    etag = r.headers["etag"]
    assert etag == f'"{hashlib.sha256(r.content).hexdigest()}"'
    again = world.client.get(url, headers={**world.keys["mara"], "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""


def test_invoice_download_says_why_there_is_none(world: World) -> None:
    for payee, reason in (
        ("Mara Ellison", "nothing_payable"),
        ("Lena Brandt", "the payee has no self-billing agreement"),
    ):
        r = world.client.get(
            f"/v1/statements/{world.sid(payee)}/download?format=invoice",
            headers=world.keys["admin"],
        )
        body = _problem(r, 404)
        assert reason in str(body["detail"])
        assert body["errors"] == [
            {"field": "statement_id", "message": body["detail"], "code": "invoice_missing"}
        ]


def test_unknown_format_is_422_naming_the_field(world: World) -> None:
    r = world.client.get(
        f"/v1/statements/{world.sid('Mara Ellison')}/download?format=docx",
        headers=world.keys["admin"],
    )
    body = _problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["format"]
    r = world.client.get(
        f"/v1/statements/{world.sid('Mara Ellison')}/download", headers=world.keys["admin"]
    )
    assert [e["field"] for e in _problem(r, 422)["errors"]] == ["format"]


def test_payee_key_sees_only_its_own_statements(world: World) -> None:
    c, mara = world.client, world.keys["mara"]
    own, other = world.sid("Mara Ellison"), world.sid("Lena Brandt")
    listed = c.get("/v1/statements", headers=mara).json()["items"]
    assert [s["id"] for s in listed] == [own]
    lena_id = world.period.payee_id("Lena Brandt")
    assert c.get(f"/v1/statements?payee_id={lena_id}", headers=mara).json()["items"] == []
    for url in (
        f"/v1/statements/{other}",
        f"/v1/statements/{other}/download?format=csv",
        f"/v1/statements/{other}/download?format=invoice",
        f"/v1/payees/{lena_id}/balance-history",
    ):
        body = _problem(c.get(url, headers=mara), 404)
        assert "for this organisation" in str(body["detail"])
    assert c.get(f"/v1/statements/{own}", headers=mara).status_code == 200


def test_other_organisation_gets_404(world: World) -> None:
    c, key = world.client, world.keys["other_org"]
    sid = world.sid("Mara Ellison")
    assert c.get("/v1/statements", headers=key).json()["items"] == []
    body = _problem(c.get(f"/v1/statements/{sid}", headers=key), 404)
    assert body["detail"] == f"no statement {sid} for this organisation"
    _problem(c.get(f"/v1/statements/{sid}/download?format=json", headers=key), 404)
    payee = world.period.payee_id("Mara Ellison")
    _problem(c.get(f"/v1/payees/{payee}/balance-history", headers=key), 404)
    _problem(c.get("/v1/statements/999999", headers=world.keys["admin"]), 404)
    _problem(c.get("/v1/statements", headers={"X-API-Key": "tm_nope_nope"}), 401)
    _problem(c.get(f"/v1/statements/{sid}", headers={"X-API-Key": "tm_nope_nope"}), 401)


def test_balance_history_adds_up_to_the_statement(world: World) -> None:
    payee = world.period.payee_id("Mara Ellison")
    r = world.client.get(f"/v1/payees/{payee}/balance-history", headers=world.keys["mara"])
    assert r.status_code == 200, r.text
    body = r.json()
    st = world.statement("Mara Ellison")
    assert body["payee_name"] == "Mara Ellison"
    assert "payment due" in body["payments_note"]
    assert sorted(c["reference"] for c in body["contracts"]) == sorted(
        c["reference"] for c in st.contracts
    )
    moves = [m for c in body["contracts"] for m in c["periods"] if m["period"] == st.period]
    assert len(moves) == len(st.contracts)
    for figure in ("earnings", "recouped", "payable", "closing", "carried_forward"):
        total = sum((Decimal(m[figure]) for m in moves), Decimal(0))
        assert total == st.figures[figure], figure
    assert all(m["run_status"] == "locked" and m["run_id"] == st.run_id for m in moves)
    for c in body["contracts"]:
        for m in c["periods"]:  # every movement reconciles opening to closing
            assert Decimal(m["opening"]) + Decimal(m["earnings"]) - Decimal(m["advances"]) - (
                Decimal(m["costs"])
            ) - Decimal(m["payable"]) - Decimal(m["reserve_held"]) + Decimal(
                m["reserve_released"]
            ) - Decimal(m["tax"]) == Decimal(m["closing"]), (c["reference"], m)


def test_exported_files_are_served_only_when_they_match_the_manifest(world: World) -> None:
    p = world.period
    st = world.statement("Lena Brandt")
    folder = DataDir(p.data).statements(p.org_id, p.period, st.version)
    export_run(p.factory, p.data, run_id=p.run_id, out_dir=folder, formats=("csv", "json"))
    url = f"/v1/statements/{st.statement_id}/download?format=csv"
    path = folder / f"payee{st.payee_id}" / f"{st.file_stem}.csv"
    manifest = folder / MANIFEST
    saved = folder.parent / "saved"
    shutil.copytree(folder, saved)
    try:
        # A re-signed file (manifest updated with it) is what is served: proof the export is read.
        changed = path.read_bytes() + b"# exported copy\n"
        path.write_bytes(changed)
        doc = json.loads(manifest.read_bytes())
        for entry in doc["files"]:
            if entry["path"].endswith(path.name):
                entry["sha256"] = hashlib.sha256(changed).hexdigest()
        manifest.write_text(json.dumps(doc))
        r = world.client.get(url, headers=world.keys["lena"])
        assert r.content == changed
        assert r.headers["etag"] == f'"{hashlib.sha256(changed).hexdigest()}"'
        # A file that does not match its manifest is never served: rendered anew instead.
        path.write_bytes(b"tampered")
        r = world.client.get(url, headers=world.keys["lena"])
        assert r.content == render(st, "csv")
    finally:
        shutil.rmtree(folder)
        shutil.move(saved, folder)


def test_unapproved_run_is_a_preview_for_finance_only(preview: World) -> None:
    c, keys = preview.client, preview.keys
    sid = preview.sid("Mara Ellison")
    assert c.get("/v1/statements", headers=keys["mara"]).json()["items"] == []
    assert c.get("/v1/statements", headers=keys["admin"]).json()["items"] == []
    _problem(c.get(f"/v1/statements/{sid}", headers=keys["mara"]), 404)
    _problem(c.get(f"/v1/statements/{sid}/download?format=csv", headers=keys["mara"]), 404)
    _problem(c.get(f"/v1/statements/{sid}", headers=keys["analyst"]), 404)
    for who in ("mara", "analyst"):
        r = c.get("/v1/statements?include_unapproved=true", headers=keys[who])
        assert "include_unapproved" in str(_problem(r, 403)["detail"])
    for who in ("admin", "finance"):
        items = c.get("/v1/statements?include_unapproved=true", headers=keys[who]).json()["items"]
        assert {s["id"] for s in items} == set(preview.period.statement_ids().values())
        assert {s["run_status"] for s in items} == {"calculated"}
    r = c.get(f"/v1/statements/{sid}", headers=keys["finance"])
    assert r.status_code == 200 and r.json()["run"]["status"] == "preview"
    payee = preview.period.payee_id("Mara Ellison")
    history = c.get(f"/v1/payees/{payee}/balance-history", headers=keys["mara"]).json()
    assert history["contracts"] == []  # nothing approved yet


def test_statement_errors_keep_their_code() -> None:
    missing = statement_problem(7, StatementError("statement_missing", "no statement 7"))
    assert (missing.status, missing.errors[0].code) == (404, "statement_missing")
    broken = statement_problem(7, StatementError("detail_mismatch", "lines add up to 1.00"))
    assert broken.status == 409
    assert broken.errors[0].code == "detail_mismatch"
    assert "lines add up to 1.00" in broken.detail
