"""``/v1/deliveries``: tenant isolation, payee keys refused, status and history shown.

``COVERED`` is read by test_tenancy.test_every_route_has_an_isolation_case."""

from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.store import db
from schemas.store.deliveries import Delivery, DeliveryEvent, DeliveryKind, DeliveryState
from schemas.store.models import Role
from tests.api.conftest import seed
from tests.conftest import Tenant

COVERED = {"GET /v1/deliveries", "GET /v1/deliveries/{}"}
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def add_delivery(
    t: Tenant, ids: dict[str, Any], state: DeliveryState = DeliveryState.QC_FAILED
) -> int:
    with db.transaction(t.factory, actor="test") as s:
        d = Delivery(
            org_id=t.org_id,
            release_id=ids["release"],
            upc="5063450000179",
            dsp="harbour",
            kind=DeliveryKind.FULL,
            fingerprint=f"f{t.org_id:063d}",
            state=state,
            message_id=f"M{t.org_id}",
            reasons=[
                {
                    "release": "5063450000179",
                    "dsp": "harbour",
                    "field": "front_cover",
                    "code": "artwork_too_small",
                    "message": "1400×1400",
                    "severity": "error",
                }
            ],
            warnings=[],
            attempts=0,
            created_at=NOW,
            updated_at=NOW,
        )
        s.add(d)
        s.flush()
        for a, b in ((None, "queued"), ("queued", state.value)):
            s.add(
                DeliveryEvent(org_id=t.org_id, delivery_id=d.id, at=NOW, from_state=a, to_state=b)
            )
        return d.id


def test_other_org_cannot_see_a_delivery(tenant_a: Tenant, tenant_b: Tenant) -> None:
    theirs = add_delivery(tenant_b, seed(tenant_b, 1))
    own = add_delivery(tenant_a, seed(tenant_a, 0))
    r = tenant_a.client.get(f"/v1/deliveries/{theirs}", headers=tenant_a.admin)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"
    listed = tenant_a.client.get("/v1/deliveries", headers=tenant_a.admin).json()["items"]
    assert [d["id"] for d in listed] == [own]
    assert (
        tenant_b.client.get(f"/v1/deliveries/{theirs}", headers=tenant_b.admin).status_code == 200
    )


def test_status_reasons_and_history(tenant_a: Tenant) -> None:
    did = add_delivery(tenant_a, seed(tenant_a, 0))
    body = tenant_a.client.get(f"/v1/deliveries/{did}", headers=tenant_a.admin).json()
    assert body["state"] == "qc_failed"
    assert body["reasons"][0]["code"] == "artwork_too_small"
    assert [e["to_state"] for e in body["history"]] == ["queued", "qc_failed"]
    analyst = tenant_a.key(Role.ANALYST)
    page = tenant_a.client.get("/v1/deliveries?state=qc_failed&dsp=harbour", headers=analyst).json()
    assert [d["id"] for d in page["items"]] == [did]
    none = tenant_a.client.get("/v1/deliveries?state=acknowledged", headers=analyst).json()
    assert none["items"] == []


def test_payee_keys_cannot_read_deliveries(tenant_a: Tenant) -> None:
    ids = seed(tenant_a, 0)
    did = add_delivery(tenant_a, ids)
    payee = tenant_a.key(Role.PAYEE, ids["payee"])
    assert tenant_a.client.get("/v1/deliveries", headers=payee).status_code == 403
    assert tenant_a.client.get(f"/v1/deliveries/{did}", headers=payee).status_code == 403
