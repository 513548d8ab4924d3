"""Tenant isolation, route by route: org A's keys can neither see nor change org B's data,
and a payee key sees only its own payee. Every /v1 route must appear in ROUTES below, so a
new route without an isolation case fails this file."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from schemas.store.models import Role
from tests.api.conftest import seed
from tests.api.test_deliveries_tenancy import COVERED as DELIVERY_ROUTES
from tests.api.test_runs_api import COVERED as BOOKS_ROUTES
from tests.api.test_statements_api import COVERED as STATEMENT_ROUTES
from tests.conftest import SECRET, Tenant, make_org
from tests.snapshots import copy_store

# (method, path template, body for writes); {x} is filled from the victim's ids.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/artists/{artist}", None),
    ("PATCH", "/v1/artists/{artist}", {"name": "Hijacked"}),
    ("DELETE", "/v1/artists/{artist}", None),
    ("GET", "/v1/releases/{release}", None),
    ("PATCH", "/v1/releases/{release}", {"title": "Hijacked"}),
    ("DELETE", "/v1/releases/{release}", None),
    ("GET", "/v1/tracks/{track}", None),
    ("PATCH", "/v1/tracks/{track}", {"title": "Hijacked"}),
    ("DELETE", "/v1/tracks/{track}", None),
    ("GET", "/v1/tracks/{track}/split-sheet?as_of=2024-06-01&territory=GB", None),
    ("GET", "/v1/payees/{payee}", None),
    ("GET", "/v1/payees/{payee}/balance-history", None),
    ("PATCH", "/v1/payees/{payee}", {"name": "Hijacked"}),
    ("DELETE", "/v1/payees/{payee}", None),
    ("GET", "/v1/contracts/{contract}", None),
    ("PATCH", "/v1/contracts/{contract}", {"name": "Hijacked"}),
    ("DELETE", "/v1/contracts/{contract}", None),
    ("GET", "/v1/contracts/{contract}/rates", None),
    ("POST", "/v1/contracts/{contract}/rates", {"rate": "0.9", "effective_from": "2025-01-01"}),
    ("GET", "/v1/contracts/{contract}/charges", None),
    ("DELETE", "/v1/contracts/{contract}/rates/{rate}", None),
    ("GET", "/v1/contracts/{contract}/terms", None),
    ("POST", "/v1/contracts/{contract}/terms", {"effective_from": "2026-01-01"}),
    ("DELETE", "/v1/contracts/{contract}/terms/{terms}", None),
    ("DELETE", "/v1/contracts/{contract}/charges/{charge}", None),
    (
        "POST",
        "/v1/contracts/{contract}/charges",
        {"kind": "advance", "amount": "1.00", "currency": "EUR", "incurred_on": "2025-01-01"},
    ),
    ("GET", "/v1/splits/{split}", None),
    ("PATCH", "/v1/splits/{split}", {"effective_to": "2024-12-31"}),
    ("DELETE", "/v1/splits/{split}", None),
    ("GET", "/v1/suspense/{suspense}", None),
    ("POST", "/v1/suspense/{suspense}/resolve", {"track_id": 1}),
    ("GET", "/v1/suspense/rules/{rule}", None),
    ("DELETE", "/v1/suspense/rules/{rule}", None),
]
LISTS = ["artists", "releases", "tracks", "payees", "contracts", "splits", "suspense"]
LISTS += ["suspense/rules"]
# Collection routes whose writes take ids in the body; isolation is checked in
# test_writes_cannot_reference_other_tenants below.
COLLECTION_WRITES = {f"POST /v1/{kind}" for kind in LISTS if not kind.startswith("suspense")} | {
    "POST /v1/imports/catalog"
}
NO_TENANT_DATA = {"GET /healthz", "GET /v1/me"}
AUDIT = {"GET /v1/audit-log"}  # test_audit_log_is_per_org
WARNINGS = {"GET /v1/royalty/warnings"}  # test_royalty_warnings_are_per_org


# Tenant B's catalogue, seeded through the API, is what most cases attack. On SQLite it is
# seeded once per session (per worker) and the store copied; on PostgreSQL, per test.
SEEDED = pytest.StashKey[dict[str, Any]]()


def _seeded_store(factory: sessionmaker[Session]) -> dict[str, Any]:
    make_org(factory, "label-a")
    with TestClient(create_app(factory, secret_key=SECRET)) as client:
        return seed(Tenant(make_org(factory, "label-b"), client, factory), 1)


@pytest.fixture
def db_url(db_url: str, backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite" and "seeded_b" in request.fixturenames:
        snapshots = request.getfixturevalue("snapshots")
        request.node.stash[SEEDED] = copy_store(snapshots, "tenancy", _seeded_store, db_url)
    return db_url


@pytest.fixture
def seeded_b(tenant_b: Tenant, request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.node.stash.get(SEEDED, None) or seed(tenant_b, 1)


def test_every_route_has_an_isolation_case() -> None:
    app = create_app(sessionmaker(), secret_key="x")
    covered = {f"{m} {_norm(p)}" for m, p, _ in ROUTES} | {f"GET /v1/{k}" for k in LISTS}
    covered |= COLLECTION_WRITES | NO_TENANT_DATA | AUDIT | WARNINGS | FORMATS
    covered |= DELIVERY_ROUTES  # isolation cases in test_deliveries_tenancy.py
    covered |= STATEMENT_ROUTES  # isolation cases in test_statements_api.py (a locked run)
    covered |= BOOKS_ROUTES  # runs, ingested files, rates: test_runs_api.py (a locked run)
    routes = {
        f"{method} {_norm(r.path)}"
        for r in app.routes
        if isinstance(r, APIRoute) and r.path.startswith(("/v1", "/healthz"))
        for method in r.methods
    }
    assert routes - covered == set(), "add these routes to the tenancy tests"


def _norm(path: str) -> str:
    """Path templates compared by shape: every {param} becomes {}."""
    return re.sub(r"\{[^}]+\}", "{}", path.split("?")[0])


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_other_org_cannot_see_or_change(
    tenant_a: Tenant,
    tenant_b: Tenant,
    seeded_b: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    url = path.format(**seeded_b)
    before = tenant_b.client.get(
        url.split("?")[0] if method != "GET" else url, headers=tenant_b.admin
    )
    r = tenant_a.client.request(method, url, json=body, headers=tenant_a.admin)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if method != "GET" and before.status_code == 200:
        after = tenant_b.client.get(url.split("?")[0], headers=tenant_b.admin)
        assert after.json() == before.json()  # untouched


@pytest.mark.parametrize("kind", LISTS)
def test_lists_show_only_own_org(tenant_a: Tenant, tenant_b: Tenant, kind: str) -> None:
    own = seed(tenant_a, 0)
    theirs = seed(tenant_b, 1)
    key = {
        "splits": "split",
        "contracts": "contract",
        "payees": "payee",
        "suspense": "suspense",
        "suspense/rules": "rule",
    }.get(kind, kind[:-1])
    got = {
        x["id"] for x in tenant_a.client.get(f"/v1/{kind}", headers=tenant_a.admin).json()["items"]
    }
    assert own[key] in got
    assert theirs[key] not in got


def test_writes_cannot_reference_other_tenants(
    tenant_a: Tenant, tenant_b: Tenant, seeded_b: dict[str, Any]
) -> None:
    own = seed(tenant_a, 0)
    cases = [
        (
            "/v1/releases",
            {
                "upc": "4006381333931",
                "title": "X",
                "release_type": "Single",
                "label_name": "L",
                "artist_id": seeded_b["artist"],
                "original_release_date": "2024-01-01",
            },
            "artist_id",
        ),
        (
            "/v1/tracks",
            {
                "release_id": seeded_b["release"],
                "isrc": "GBXYZ2400009",
                "title": "X",
                "artist_id": own["artist"],
                "duration_seconds": 100,
                "track_number": 2,
            },
            "release_id",
        ),
        (
            "/v1/contracts",
            {
                "payee_id": seeded_b["payee"],
                "reference": "X",
                "name": "X",
                "basis": "gross_receipts",
                "currency": "EUR",
                "start_date": "2024-01-01",
            },
            "payee_id",
        ),
        (
            "/v1/splits",
            {
                "track_id": own["track"],
                "payee_id": seeded_b["payee"],
                "contract_id": seeded_b["contract"],
                "share": "0.1",
                "effective_from": "2024-01-01",
            },
            "payee_id",
        ),
        (
            "/v1/payees",
            {"name": "X", "statement_currency": "EUR", "artist_id": seeded_b["artist"]},
            "artist_id",
        ),
    ]
    for path, body, field in cases:
        r = tenant_a.client.post(path, json=body, headers=tenant_a.admin)
        assert r.status_code == 422, (path, r.text)
        assert {"field": field, "code": "not_found"}.items() <= r.json()["errors"][0].items()


def test_import_writes_only_into_callers_org(
    tenant_a: Tenant, tenant_b: Tenant, seeded_b: dict[str, Any]
) -> None:
    # Org B already has UPC 036000291452; org A may use the same code for its own release.
    csv = (
        "release_upc,release_title,release_type,label_name,release_artist,release_date,"
        "isrc,track_title,duration,track_number\n"
        "036000291452,Mine,Single,A Label,A Artist,2024-02-02,GBAAA2400001,Mine,3:10,1\n"
    )
    r = tenant_a.client.post(
        "/v1/imports/catalog", content=csv, headers={**tenant_a.admin, "content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    theirs = tenant_b.client.get(f"/v1/releases/{seeded_b['release']}", headers=tenant_b.admin)
    assert theirs.json()["title"] == "Release 1"
    mine = tenant_a.client.get("/v1/releases?upc=036000291452", headers=tenant_a.admin).json()
    assert [x["title"] for x in mine["items"]] == ["Mine"]


def test_payee_key_sees_only_its_payee(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    other = seed(tenant_a, 2)  # a second catalogue in the same org
    key = tenant_a.key(Role.PAYEE, payee_id=ids["payee"])
    c = tenant_a.client

    def listed(kind: str) -> set[int]:
        r = c.get(f"/v1/{kind}", headers=key)
        assert r.status_code == 200, r.text
        return {x["id"] for x in r.json()["items"]}

    assert listed("payees") == {ids["payee"]}
    assert listed("contracts") == {ids["contract"]}
    assert listed("splits") == {ids["split"]}
    assert listed("tracks") == {ids["track"]}
    assert listed("releases") == {ids["release"]}
    for path in (
        f"/v1/payees/{ids['other_payee']}",
        f"/v1/contracts/{ids['other_contract']}",
        f"/v1/splits/{ids['other_split']}",
        f"/v1/tracks/{other['track']}",
        f"/v1/releases/{other['release']}",
        f"/v1/contracts/{ids['other_contract']}/rates",
        f"/v1/contracts/{ids['other_contract']}/terms",
        f"/v1/payees/{ids['other_payee']}/balance-history",
    ):
        assert c.get(path, headers=key).status_code == 404, path
    sheet = c.get(
        f"/v1/tracks/{ids['track']}/split-sheet?as_of=2024-06-01&territory=GB", headers=key
    ).json()
    assert [s["payee_id"] for s in sheet["splits"]] == [ids["payee"]]
    assert sheet["label_share"] is None
    r = c.patch(f"/v1/payees/{ids['payee']}", json={"name": "Me"}, headers=key)
    assert r.status_code == 403


@pytest.mark.parametrize("role", [Role.ANALYST, Role.PAYEE])
def test_read_only_roles_cannot_write(tenant_a: Tenant, role: Role) -> None:
    ids = seed(tenant_a, 0)
    key = tenant_a.key(role, payee_id=ids["payee"] if role is Role.PAYEE else None)
    r = tenant_a.client.post("/v1/artists", json={"name": "New"}, headers=key)
    assert r.status_code == 403
    assert r.json()["title"] == "Forbidden"
    r = tenant_a.client.delete(f"/v1/splits/{ids['split']}", headers=key)
    assert r.status_code == 403


def test_audit_log_is_per_org(tenant_a: Tenant, tenant_b: Tenant, seeded_b: dict[str, Any]) -> None:
    own = seed(tenant_a, 0)
    entries = tenant_a.client.get("/v1/audit-log?limit=500", headers=tenant_a.admin).json()
    touched = {(e["entity"], e["entity_id"]) for e in entries["items"]}
    assert ("tracks", own["track"]) in touched
    assert ("tracks", seeded_b["track"]) not in touched
    for role in (Role.ANALYST, Role.PAYEE):
        key = tenant_a.key(role, payee_id=own["payee"] if role is Role.PAYEE else None)
        assert tenant_a.client.get("/v1/audit-log", headers=key).status_code == 403


def test_payee_keys_cannot_read_suspense(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    key = tenant_a.key(Role.PAYEE, payee_id=ids["payee"])
    assert tenant_a.client.get("/v1/suspense", headers=key).status_code == 403
    assert tenant_a.client.get(f"/v1/suspense/{ids['suspense']}", headers=key).status_code == 403
    assert tenant_a.client.get("/v1/suspense/rules", headers=key).status_code == 403
    rule = f"/v1/suspense/rules/{ids['rule']}"
    assert tenant_a.client.get(rule, headers=key).status_code == 403
    assert tenant_a.client.delete(rule, headers=key).status_code == 403
    assert tenant_a.client.get(rule, headers=tenant_a.admin).status_code == 200


def test_forgetting_a_remembered_match_reopens_what_it_resolved(tenant_a: Tenant) -> None:
    """Resolve, forget: the item is open again, the rule gone (and in the audit log)."""
    own = seed(tenant_a, 0)
    r = tenant_a.client.post(
        f"/v1/suspense/{own['suspense']}/resolve",
        json={"track_id": own["track"]},
        headers=tenant_a.admin,
    )
    assert r.status_code == 200, r.text
    rule_id = r.json()["rule_id"]
    listed = tenant_a.client.get(
        "/v1/suspense/rules", params={"key": r.json()["item"]["key"]}, headers=tenant_a.admin
    ).json()["items"]
    assert [x["id"] for x in listed] == [rule_id]
    assert listed[0]["track_id"] == own["track"]
    gone = tenant_a.client.delete(f"/v1/suspense/rules/{rule_id}", headers=tenant_a.admin)
    assert gone.status_code == 204
    item = tenant_a.client.get(f"/v1/suspense/{own['suspense']}", headers=tenant_a.admin).json()
    assert (item["status"], item["rule_id"]) == ("open", None)
    again = tenant_a.client.get(f"/v1/suspense/rules/{rule_id}", headers=tenant_a.admin)
    assert again.status_code == 404
    audit = tenant_a.client.get("/v1/audit-log", headers=tenant_a.admin).json()["items"]
    rule_entries = [e for e in audit if e["entity"] == "match_rules" and e["entity_id"] == rule_id]
    assert "delete" in {e["action"] for e in rule_entries}, rule_entries


def test_resolve_cannot_point_at_another_orgs_track(
    tenant_a: Tenant, tenant_b: Tenant, seeded_b: dict[str, Any]
) -> None:
    own = seed(tenant_a, 0)
    r = tenant_a.client.post(
        f"/v1/suspense/{own['suspense']}/resolve",
        json={"track_id": seeded_b["track"]},
        headers=tenant_a.admin,
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "track_id"
    r = tenant_a.client.post(
        f"/v1/suspense/{own['suspense']}/resolve",
        json={"track_id": own["track"]},
        headers=tenant_a.admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["item"]["status"] == "resolved"


def test_royalty_warnings_are_per_org(
    tenant_a: Tenant, tenant_b: Tenant, seeded_b: dict[str, Any]
) -> None:
    # org B: a payee with all of a track's release until 2025, half of it from 2026
    track = tenant_b.post(
        "/v1/tracks",
        {
            "release_id": seeded_b["release"],
            "isrc": "GBABC2600001",
            "title": "Solo",
            "artist_id": seeded_b["artist"],
            "duration_seconds": 100,
            "track_number": 2,
        },
    )
    for dates in (
        {"share": "1", "effective_from": "2024-01-01", "effective_to": "2025-12-31"},
        {"share": "0.5", "effective_from": "2026-01-01"},
    ):
        tenant_b.post(
            "/v1/splits",
            {"release_id": seeded_b["release"], "payee_id": seeded_b["payee"]}
            | {"contract_id": seeded_b["contract"], **dates},
        )
    url = "/v1/royalty/warnings?period=2026-01"
    theirs = tenant_b.client.get(url, headers=tenant_b.admin)
    assert theirs.status_code == 200, theirs.text
    assert [(w["code"], w["subject"]["track_id"]) for w in theirs.json()] == [
        ("W-SHARE-DROP", track["id"])
    ]
    assert "GBABC2600001 “Solo”" in theirs.json()[0]["message"]
    own = seed(tenant_a, 0)
    ours = tenant_a.client.get(url, headers=tenant_a.admin)
    assert ours.status_code == 200 and ours.json() == []
    payee = tenant_a.key(Role.PAYEE, payee_id=own["payee"])
    assert tenant_a.client.get(url, headers=payee).status_code == 403
    bad = tenant_a.client.get("/v1/royalty/warnings?period=2026-13", headers=tenant_a.admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["code"] == "bad_period"


FORMATS = {  # test_formats_are_per_org_and_writable_by_admin_and_finance_only
    "GET /v1/formats",
    "GET /v1/formats/{}",
    "PUT /v1/formats/{}",
    "DELETE /v1/formats/{}",
}


def test_formats_are_per_org_and_writable_by_admin_and_finance_only(
    tenant_a: Tenant, tenant_b: Tenant
) -> None:
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "schemas" / "formats" / "spotify.yaml"
    spec = shipped.read_text().replace("name: spotify", "name: b_sales", 1)
    url = "/v1/formats/b_sales"
    r = tenant_b.client.put(url, json={"spec": spec}, headers=tenant_b.admin)
    assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["new"], r.text
    finance = tenant_b.key(Role.FINANCE)
    again = tenant_b.client.put(url, json={"spec": spec}, headers=finance).json()
    assert (again["version"], again["new"]) == (1, False)
    changed = tenant_b.client.put(url, json={"spec": spec + "# v2\n"}, headers=finance)
    assert changed.json()["version"] == 2
    analyst = tenant_b.key(Role.ANALYST)
    assert tenant_b.client.get(url, headers=analyst).json()["spec"].endswith("# v2\n")
    assert tenant_b.client.put(url, json={"spec": spec}, headers=analyst).status_code == 403
    payee = tenant_b.key(Role.PAYEE, payee_id=seed(tenant_b, 0)["payee"])
    assert tenant_b.client.get("/v1/formats", headers=payee).status_code == 403
    bad = tenant_b.client.put(
        "/v1/formats/bad", json={"spec": "name: bad\ncolumns: 3\n"}, headers=tenant_b.admin
    )
    assert bad.status_code == 422 and "columns" in bad.text
    wrong = tenant_b.client.put("/v1/formats/other", json={"spec": spec}, headers=tenant_b.admin)
    assert wrong.status_code == 422
    # the other organisation neither sees, changes nor removes it
    theirs = [f["name"] for f in tenant_a.client.get("/v1/formats", headers=tenant_a.admin).json()]
    assert "b_sales" not in theirs and "spotify" in theirs
    for method in ("GET", "DELETE"):
        r = tenant_a.client.request(method, url, headers=tenant_a.admin)
        assert r.status_code == 404, r.text
    assert tenant_b.client.get(url, headers=tenant_b.admin).json()["version"] == 2
    assert tenant_b.client.delete(url, headers=tenant_b.admin).status_code == 204
    assert tenant_b.client.get(url, headers=tenant_b.admin).status_code == 404
