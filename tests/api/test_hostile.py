"""Hostile and edge-case input: always a 4xx problem+json, never a 500, nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import seed
from tests.conftest import Tenant

PROBLEM = "application/problem+json"
BIG = 2**31


def assert_problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return dict(r.json())


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/tracks/{BIG}",
        f"/v1/tracks?artist_id={BIG}",
        f"/v1/splits?payee_id={10**30}",
        f"/v1/contracts/{BIG}/rates",
        f"/v1/audit-log?entity_id={BIG}",
        "/v1/tracks/0",
        "/v1/tracks/-1",
    ],
)
def test_out_of_range_ids_are_422(tenant_a: Tenant, path: str) -> None:
    assert_problem(tenant_a.client.get(path, headers=tenant_a.admin), 422)


def test_out_of_range_cursor_is_422(tenant_a: Tenant) -> None:
    import base64
    import json

    cursor = base64.urlsafe_b64encode(json.dumps({"after": BIG}).encode()).decode()
    r = tenant_a.client.get("/v1/artists", params={"cursor": cursor}, headers=tenant_a.admin)
    assert assert_problem(r, 422)["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/artists", {"name": "x" * 301}, "name"),
        ("/v1/artists", {"name": "a\x00b"}, "name"),
        ("/v1/artists", {"name": "tab\tinside"}, "name"),
        ("/v1/artists", {"name": "Sam", "country": "ß"}, "country"),
        (
            "/v1/payees",
            {"name": "P", "statement_currency": "EUR", "email": "a@" + "b" * 330 + ".c"},
            "email",
        ),
    ],
)
def test_text_beyond_the_column_or_with_control_chars_is_422(
    tenant_a: Tenant, path: str, body: dict[str, Any], field: str
) -> None:
    r = tenant_a.client.post(path, json=body, headers=tenant_a.admin)
    assert field in {e["field"] for e in assert_problem(r, 422)["errors"]}


def test_track_number_overflow_and_far_dates(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    r = tenant_a.client.post(
        "/v1/tracks",
        headers=tenant_a.admin,
        json={
            "release_id": ids["release"],
            "isrc": "GBABC2499999",
            "title": "T",
            "artist_id": ids["artist"],
            "duration_seconds": 100,
            "track_number": BIG,
        },
    )
    assert "track_number" in {e["field"] for e in assert_problem(r, 422)["errors"]}
    r = tenant_a.client.post(
        "/v1/splits",
        headers=tenant_a.admin,
        json={
            "track_id": ids["track"],
            "payee_id": ids["payee"],
            "contract_id": ids["contract"],
            "share": "0.1",
            "effective_from": "2030-01-01",
            "effective_to": "9999-12-31",
        },
    )
    assert "effective_to" in {e["field"] for e in assert_problem(r, 422)["errors"]}


def test_json_numbers_are_exact_decimals(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    body = (
        '{"kind": "advance", "amount": 99999999999999.99, "currency": "EUR", '
        '"incurred_on": "2024-03-01"}'
    )
    r = tenant_a.client.post(
        f"/v1/contracts/{ids['contract']}/charges",
        content=body,
        headers={**tenant_a.admin, "content-type": "application/json"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "99999999999999.990000"


def test_deeply_nested_json_import_is_422(tenant_a: Tenant) -> None:
    body = "[" * 100_000 + "]" * 100_000
    r = tenant_a.client.post(
        "/v1/imports/catalog",
        content=body,
        headers={**tenant_a.admin, "content-type": "application/json"},
    )
    assert assert_problem(r, 422)["errors"][0]["field"] in {"file", "body"}


def test_like_wildcards_are_literal_in_filters(tenant_a: Tenant) -> None:
    tenant_a.post("/v1/artists", {"name": "100% Pure"})
    tenant_a.post("/v1/artists", {"name": "Other"})
    r = tenant_a.client.get("/v1/artists", params={"name": "%"}, headers=tenant_a.admin)
    assert [a["name"] for a in r.json()["items"]] == ["100% Pure"]
    r = tenant_a.client.get("/v1/artists", params={"name": "_"}, headers=tenant_a.admin)
    assert r.json()["items"] == []


def test_names_are_unique_regardless_of_case_on_every_backend(tenant_a: Tenant) -> None:
    tenant_a.post("/v1/artists", {"name": "Émilie"})
    r = tenant_a.client.post("/v1/artists", json={"name": "ÉMILIE"}, headers=tenant_a.admin)
    assert assert_problem(r, 422)["errors"][0]["code"] == "duplicate"


def test_a_charge_is_deleted_only_through_its_own_contract(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    wrong = f"/v1/contracts/{ids['other_contract']}/charges/{ids['charge']}"
    assert_problem(tenant_a.client.delete(wrong, headers=tenant_a.admin), 404)
    right = f"/v1/contracts/{ids['contract']}/charges/{ids['charge']}"
    assert tenant_a.client.delete(right, headers=tenant_a.admin).status_code == 204
    left = tenant_a.client.get(
        f"/v1/contracts/{ids['contract']}/charges", headers=tenant_a.admin
    ).json()["items"]
    assert left == []


def test_split_outside_its_contract_term_is_refused(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    r = tenant_a.client.post(
        "/v1/splits",
        headers=tenant_a.admin,
        json={
            "release_id": ids["release"],
            "payee_id": ids["payee"],
            "contract_id": ids["contract"],
            "share": "0.1",
            "effective_from": "2023-01-01",
        },
    )
    assert assert_problem(r, 422)["errors"][0]["code"] == "outside_contract_term"
