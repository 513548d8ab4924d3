"""The API's behaviour: CRUD, filters, pagination, effective dating, problem+json, auth."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.store.models import Role
from tests.api.conftest import seed
from tests.conftest import Tenant
from tests.servers.postgres import free_port

PROBLEM = "application/problem+json"


def test_health_and_docs(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    for page in ("/docs", "/redoc"):  # offline: every asset from this server, none from a CDN
        r = client.get(page)
        assert r.status_code == 200
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets, r.text
        assert "/openapi.json" in r.text
        for url in assets:
            assert url.startswith("/docs-static/"), (page, url)
            got = client.get(url)
            assert got.status_code == 200, url
            assert len(got.content) > (100_000 if url.endswith(".js") else 500), url
        assert "cdn" not in r.text
        assert "fonts.googleapis" not in r.text
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/imports/catalog" in paths
    assert "/v1/splits/{obj_id}" in paths


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "tm_nope_nope"},
        {"Authorization": "Bearer garbage"},
        {"X-API-Key": "not-a-key"},
    ],
)
def test_unauthenticated_is_401_problem(client: Any, headers: dict[str, str]) -> None:
    r = client.get("/v1/artists", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["status"] == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_bearer_token_works_like_the_header(tenant_a: Tenant) -> None:
    plain = tenant_a.admin["X-API-Key"]
    r = tenant_a.client.get("/v1/me", headers={"Authorization": f"Bearer {plain}"})
    assert r.json() == {
        "organisation": "label-a",
        "role": "admin",
        "payee_id": None,
        "key_prefix": plain.split("_")[1],
    }


def test_crud_round_trip(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    ids = seed(tenant_a, 0)
    track = c.get(f"/v1/tracks/{ids['track']}", headers=h).json()
    assert track["isrc"] == "GBABC2400000"
    assert track["contributors"] == [
        {"artist_id": ids["artist"], "role": "MainArtist", "sequence": 1}
    ]
    r = c.patch(
        f"/v1/tracks/{ids['track']}",
        json={"title": "Song (Remastered)", "isrc": "gb-abc-24-00000"},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["title"] == "Song (Remastered)"
    assert r.json()["isrc"] == "GBABC2400000"  # normalised on the way in
    payee = c.get(f"/v1/payees/{ids['payee']}", headers=h).json()
    assert payee["withholding_rate"] == "0E-10" or payee["withholding_rate"].startswith("0")
    contract = c.get(f"/v1/contracts/{ids['contract']}", headers=h).json()
    assert contract["basis"] == "net_receipts"
    assert contract["distribution_fee"] == "0.0000000000"
    new = c.post("/v1/artists", json={"name": "Spare"}, headers=h)
    assert new.headers["location"] == f"/v1/artists/{new.json()['id']}"
    assert c.delete(f"/v1/artists/{new.json()['id']}", headers=h).status_code == 204
    assert c.get(f"/v1/artists/{new.json()['id']}", headers=h).status_code == 404


def test_money_is_decimal_text_not_float(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    r = tenant_a.client.post(
        f"/v1/contracts/{ids['contract']}/charges",
        headers=tenant_a.admin,
        json={
            "kind": "recoupable_cost",
            "amount": 0.1,
            "currency": "EUR",
            "incurred_on": "2024-03-01",
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "0.100000"
    charges = tenant_a.client.get(
        f"/v1/contracts/{ids['contract']}/charges", headers=tenant_a.admin
    ).json()["items"]
    assert [x["amount"] for x in charges] == ["1000.000000", "0.100000"]


def test_cursor_pagination_and_filters(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    for i in range(7):
        tenant_a.post("/v1/artists", {"name": f"Band {i}"})
    tenant_a.post("/v1/artists", {"name": "Solo"})
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3, "name": "band"}
        if cursor:
            params["cursor"] = cursor
        page = c.get("/v1/artists", params=params, headers=h).json()
        seen += [a["name"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Band {i}" for i in range(7)]
    r = c.get("/v1/artists", params={"cursor": "bogus!"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cursor"
    r = c.get("/v1/artists", params={"limit": 100000}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "limit"


def test_identifier_filters_are_normalised(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    r = tenant_a.client.get(
        "/v1/tracks", params={"isrc": "gb-abc-24-00000"}, headers=tenant_a.admin
    )
    assert [t["id"] for t in r.json()["items"]] == [ids["track"]]


def test_bad_input_names_every_field(tenant_a: Tenant) -> None:
    r = tenant_a.client.post(
        "/v1/releases",
        headers=tenant_a.admin,
        json={
            "upc": "036000291453",
            "title": "",
            "release_type": "LP",
            "label_name": "L",
            "artist_id": 1,
            "original_release_date": "2024-13-01",
            "territories": "GB,UK",
        },
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"upc", "title", "release_type", "original_release_date", "territories"}
    upc = next(e for e in r.json()["errors"] if e["field"] == "upc")
    assert "check digit" in upc["message"]
    terr = next(e for e in r.json()["errors"] if e["field"] == "territories")
    assert "GB" in terr["message"]


def test_malformed_json_body_is_a_problem(tenant_a: Tenant) -> None:
    r = tenant_a.client.post(
        "/v1/artists",
        content=b"{not json",
        headers={**tenant_a.admin, "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == PROBLEM


def test_duplicates_and_over_100_percent(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    ids = seed(tenant_a, 0)
    r = c.post(
        "/v1/releases",
        headers=h,
        json={
            "upc": "5063450000179",
            "title": "Again",
            "release_type": "Single",
            "label_name": "L",
            "artist_id": ids["artist"],
            "original_release_date": "2024-01-01",
        },
    )
    assert r.status_code == 422
    assert r.json()["errors"][0] | {"message": ""} == {
        "field": "upc",
        "code": "duplicate",
        "message": "",
    }
    # Two 40% splits exist on the track; 30% more for the first payee's contract is too much.
    r = c.post(
        "/v1/splits",
        headers=h,
        json={
            "track_id": ids["track"],
            "payee_id": ids["other_payee"],
            "contract_id": ids["other_contract"],
            "share": "0.3",
            "effective_from": "2024-06-01",
            "territories": "FR",
        },
    )
    assert r.status_code == 422
    err = r.json()["errors"][0]
    assert err["field"] == "effective_from"
    assert err["code"] == "overlapping_range"
    assert c.get("/v1/splits", headers=h).json()["items"].__len__() == 2  # nothing written


def test_split_change_is_a_new_row_and_history_reads_back(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    ids = seed(tenant_a, 0)
    r = c.post(
        "/v1/splits",
        headers=h,
        json={
            "track_id": ids["track"],
            "payee_id": ids["payee"],
            "contract_id": ids["contract"],
            "share": "0.5",
            "effective_from": "2025-01-01",
        },
    )
    assert r.status_code == 201, r.text
    old = c.get(f"/v1/splits/{ids['split']}", headers=h).json()
    assert old["effective_to"] == "2024-12-31"
    assert old["share"] == "0.4000000000"

    def sheet(day: str) -> dict[str, Any]:
        return c.get(
            f"/v1/tracks/{ids['track']}/split-sheet",
            params={"as_of": day, "territory": "GB"},
            headers=h,
        ).json()

    assert sheet("2024-06-01")["label_share"] == "0.2000000000"
    assert sheet("2025-06-01")["label_share"] == "0.1000000000"
    assert sheet("2023-06-01") | {"splits": []} == {
        "track_id": ids["track"],
        "as_of": "2023-06-01",
        "territory": "GB",
        "level": "none",
        "splits": [],
        "label_share": "1",
    }
    listed = c.get("/v1/splits", params={"as_of": "2024-06-01"}, headers=h).json()["items"]
    assert sorted(s["id"] for s in listed) == sorted([ids["split"], ids["other_split"]])
    r = c.patch(f"/v1/splits/{ids['split']}", json={"share": "0.9"}, headers=h)
    assert r.status_code == 422  # terms never change in place
    assert {"field": "share", "in": "body", "code": "extra_forbidden"}.items() <= next(
        e for e in r.json()["errors"] if e["field"] == "share"
    ).items()


def test_rates_are_effective_dated(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    ids = seed(tenant_a, 0)
    url = f"/v1/contracts/{ids['contract']}/rates"
    r = c.post(
        url,
        json={
            "rate": "0.25",
            "effective_from": "2025-01-01",
            "tiers": [{"from_units": 100000, "rate": "0.3"}],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    rates = c.get(url, headers=h).json()["items"]
    assert [(x["rate"], x["effective_to"]) for x in rates] == [
        ("0.200000000000", "2024-12-31"),  # NUMERIC(28, 12): 12 places
        ("0.250000000000", None),
    ]
    assert rates[1]["tiers"] == [{"from_units": 100000, "rate": "0.3"}]
    on = c.get(url, params={"as_of": "2024-05-05"}, headers=h).json()["items"]
    assert [x["rate"] for x in on] == ["0.200000000000"]
    r = c.post(url, json={"rate": "20", "effective_from": "2026-01-01"}, headers=h)
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "rate_not_fraction"


def test_contract_terms_are_effective_dated(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    ids = seed(tenant_a, 0)  # its contracts' minimum payment is 10.00 from 2025
    url = f"/v1/contracts/{ids['contract']}/terms"
    change = {"effective_from": "2026-07-01", "statement_frequency": "quarterly"}
    r = c.post(url, json=change | {"distribution_fee": "0.15"}, headers=h)
    assert r.status_code == 201, r.text
    assert (r.json()["minimum_payment"], r.json()["effective_to"]) == ("10.000000", None)  # kept
    versions = c.get(url, headers=h).json()
    assert [
        (v["id"] is None, v["effective_from"], v["effective_to"], v["statement_frequency"])
        for v in versions
    ] == [
        (True, "2024-01-01", "2024-12-31", "half_yearly"),  # the contract's own terms
        (False, "2025-01-01", "2026-06-30", "half_yearly"),
        (False, "2026-07-01", None, "quarterly"),
    ]
    assert [v["distribution_fee"] for v in versions][-1] == "0.1500000000"
    refused = {
        "duplicate": change,
        "after_start": {"effective_from": "2024-01-01"},
        "required": {"effective_from": "2027-01-01", "reserve_rate": "0.1"},
    }
    for code, body in refused.items():
        r = c.post(url, json=body, headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["code"] == code, r.text
    assert c.delete(f"{url}/{versions[2]['id']}", headers=h).status_code == 204
    assert [v["effective_to"] for v in c.get(url, headers=h).json()] == ["2024-12-31", None]


def test_delete_referenced_is_conflict(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    r = tenant_a.client.delete(f"/v1/payees/{ids['payee']}", headers=tenant_a.admin)
    assert r.status_code == 409
    assert r.headers["content-type"] == PROBLEM
    assert (
        tenant_a.client.get(f"/v1/payees/{ids['payee']}", headers=tenant_a.admin).status_code == 200
    )


def test_catalog_import_all_or_nothing(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    header = (
        "release_upc,release_title,release_type,label_name,release_artist,release_date,"
        "isrc,track_title,duration,track_number\n"
    )
    good = "036000291452,Night Drive,EP,Label,Nova,2024-02-02,GBAAA2400001,Night Drive,3:10,1\n"
    bad = (
        "036000291452,Night Drive,EP,Label,Nova,2024-02-02,GBAAA24001,Two,3:99x,2\n"
        "4006381333932,Other,EP,Label,Nova,2024-02-02,GBAAA2400003,Three,200,1\n"
    )
    r = c.post(
        "/v1/imports/catalog",
        content=header + good + bad,
        headers={**h, "content-type": "text/csv"},
    )
    assert r.status_code == 422
    errors = {(e["row"], e["field"]) for e in r.json()["errors"]}
    assert errors == {(3, "isrc"), (3, "duration"), (4, "release_upc")}
    assert c.get("/v1/releases", headers=h).json()["items"] == []
    assert c.get("/v1/artists", headers=h).json()["items"] == []
    r = c.post(
        "/v1/imports/catalog", content=header + good, headers={**h, "content-type": "text/csv"}
    )
    assert r.json() == {
        "rows": 1,
        "created": {"artists": 1, "releases": 1, "tracks": 1},
        "updated": {},
        "unchanged": {},
        "dry_run": False,
    }
    r = c.post(
        "/v1/imports/catalog",
        json=[
            {
                "release_upc": "036000291452",
                "release_title": "Night Drive",
                "release_type": "EP",
                "label_name": "Label",
                "release_artist": "Nova",
                "release_date": "2024-02-02",
                "isrc": "GBAAA2400001",
                "track_title": "Night Drive",
                "duration": 190,
                "track_number": 1,
            }
        ],
        headers=h,
    )
    assert r.json()["unchanged"] == {"releases": 1, "tracks": 1}
    r = c.post(
        "/v1/imports/catalog", content=b"\xff\xfe", headers={**h, "content-type": "text/csv"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["code"] == "encoding"


@pytest.mark.integration
def test_cli_serves_the_api_on_loopback(tmp_path: Path) -> None:
    """The real server, as users start it: `tunemantra db upgrade`, `org create`,
    `apikey create`, `tunemantra api`."""
    env = {
        **os.environ,
        "TUNEMANTRA_DATA_DIR": str(tmp_path),
        "TUNEMANTRA_SECRET_KEY": "a-real-secret-for-this-test",
    }
    env.pop("TUNEMANTRA_DATABASE_URL", None)
    cli = [sys.executable, "-m", "cli"]

    def run(*args: str) -> str:
        return subprocess.run(
            [*cli, *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    run("db", "upgrade")
    run("org", "create", "live", "--name", "Live Label")
    key = run("apikey", "create", "--org", "live", "--role", "finance").strip()
    port = free_port()
    proc = subprocess.Popen(
        [*cli, "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        r = httpx.post(f"{base}/v1/artists", json={"name": "Live"}, headers={"X-API-Key": key})
        assert r.status_code == 201, r.text
        got = httpx.get(f"{base}/v1/artists", headers={"Authorization": f"Bearer {key}"})
        assert [a["name"] for a in got.json()["items"]] == ["Live"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_roles_listed(tenant_a: Tenant) -> None:
    key = tenant_a.key(Role.ANALYST)
    assert tenant_a.client.get("/v1/me", headers=key).json()["role"] == "analyst"


def test_audit_log_records_who_and_what(tenant_a: Tenant) -> None:
    c, h = tenant_a.client, tenant_a.admin
    artist = tenant_a.post("/v1/artists", {"name": "Before"})
    c.patch(f"/v1/artists/{artist['id']}", json={"name": "After"}, headers=h)
    log = c.get(
        "/v1/audit-log", params={"entity": "artists", "entity_id": artist["id"]}, headers=h
    ).json()["items"]
    assert [e["action"] for e in log] == ["create", "update"]
    assert log[1]["before"]["name"] == "Before"
    assert log[1]["after"]["name"] == "After"
    assert log[1]["actor"] == "key:" + h["X-API-Key"].split("_")[1]
    assert log[1]["api_key_id"] is not None
