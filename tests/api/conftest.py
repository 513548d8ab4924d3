"""A small catalogue built through the API itself, for a tenant."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.store import db
from schemas.store.models import MatchKind, MatchRule, SuspenseItem, SuspenseStatus
from tests.conftest import Tenant

UPCS = ["5063450000179", "036000291452", "4006381333931"]


def seed(t: Tenant, n: int = 0) -> dict[str, Any]:
    """One artist, release, track, two payees (each with a contract) and a split; ids by name."""
    artist = t.post("/v1/artists", {"name": f"Artist {n}"})
    release = t.post(
        "/v1/releases",
        {
            "upc": UPCS[n],
            "title": f"Release {n}",
            "release_type": "Single",
            "label_name": "Label",
            "artist_id": artist["id"],
            "original_release_date": "2024-01-05",
        },
    )
    track = t.post(
        "/v1/tracks",
        {
            "release_id": release["id"],
            "isrc": f"GBABC24{n:05d}",
            "title": "Song",
            "artist_id": artist["id"],
            "duration_seconds": 200,
            "track_number": 1,
            "contributors": [{"artist_id": artist["id"], "role": "MainArtist"}],
        },
    )
    ids: dict[str, Any] = {"artist": artist["id"], "release": release["id"], "track": track["id"]}
    for who in ("payee", "other_payee"):
        payee = t.post("/v1/payees", {"name": f"{who} {n}", "statement_currency": "EUR"})
        contract = t.post(
            "/v1/contracts",
            {
                "payee_id": payee["id"],
                "reference": f"C-{who}-{n}",
                "name": "Deal",
                "basis": "net_receipts",
                "currency": "EUR",
                "start_date": "2024-01-01",
                "rates": [{"rate": "0.2", "effective_from": "2024-01-01"}],
                "terms": [{"effective_from": "2025-01-01", "minimum_payment": "10.00"}],
                "charges": [
                    {
                        "kind": "advance",
                        "amount": "1000.00",
                        "currency": "EUR",
                        "incurred_on": "2024-01-02",
                    }
                ],
            },
        )
        split = t.post(
            "/v1/splits",
            {
                "track_id": track["id"],
                "payee_id": payee["id"],
                "contract_id": contract["id"],
                "share": "0.4",
                "effective_from": "2024-01-05",
            },
        )
        prefix = "" if who == "payee" else "other_"
        rates = t.client.get(f"/v1/contracts/{contract['id']}/rates", headers=t.admin).json()
        charges = t.client.get(f"/v1/contracts/{contract['id']}/charges", headers=t.admin)
        ids[f"{prefix}rate"] = rates["items"][0]["id"]
        terms = t.client.get(f"/v1/contracts/{contract['id']}/terms", headers=t.admin).json()
        ids[f"{prefix}terms"] = terms[1]["id"]
        ids[f"{prefix}charge"] = charges.json()["items"][0]["id"]
        ids |= {
            f"{prefix}payee": payee["id"],
            f"{prefix}contract": contract["id"],
            f"{prefix}split": split["id"],
        }
    with db.transaction(t.factory, actor="test") as session:
        item = SuspenseItem(
            org_id=t.org_id,
            kind=MatchKind.ISRC,
            key=f"GBZZZ24{n:05d}",
            reason="unknown_isrc",
            lines=3,
            quantity=120,
            amounts={"EUR": "1.230000"},
            status=SuspenseStatus.OPEN,
        )
        session.add(item)
        rule = MatchRule(
            org_id=t.org_id,
            kind=MatchKind.ISRC,
            key=f"GBYYY24{n:05d}",
            track_id=ids["track"],
            release_id=ids["release"],
        )
        session.add(rule)
        session.flush()
        ids["suspense"] = item.id
        ids["rule"] = rule.id
    return ids


@pytest.fixture
def seeded_b(tenant_b: Tenant) -> dict[str, Any]:
    return seed(tenant_b, 1)
