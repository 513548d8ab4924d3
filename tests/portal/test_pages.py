"""Every portal error is a page for people (401, 403, 404, 405, 422, 500), while the API's
routes keep answering ``application/problem+json``; amounts are written with thousands
separators by the one formatter. Fast: the app in-process, no browser, no run."""

from __future__ import annotations

from decimal import Decimal

import lxml.html
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

import api.portal
from api.app import create_app
from schemas.money import format_amount
from schemas.store import db
from schemas.store.keys import issue_key
from schemas.store.models import Role
from tests.conftest import SECRET, make_org


def _page(r: object) -> lxml.html.HtmlElement:
    assert r.headers["content-type"].startswith("text/html"), r.text  # type: ignore[attr-defined]
    return lxml.html.fromstring(r.text)  # type: ignore[attr-defined]


def test_every_portal_error_is_a_page_and_the_api_keeps_json(
    factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org(factory, "pages")
    with db.transaction(factory, actor="test") as s:
        _, admin = issue_key(s, org_id=org, role=Role.ADMIN, secret_key=SECRET)
    with TestClient(
        create_app(factory, secret_key=SECRET), raise_server_exceptions=False
    ) as client:
        payee = client.post(
            "/v1/payees",
            json={"name": "Mara", "statement_currency": "EUR"},
            headers={"X-API-Key": admin},
        ).json()
        with db.transaction(factory, actor="test") as s:
            _, key = issue_key(
                s, org_id=org, role=Role.PAYEE, payee_id=payee["id"], secret_key=SECRET
            )
        cases = {  # (method, path, form) -> (status, h1)
            ("POST", "/portal/", "tm_deadbeef_wrong"): (401, "Sign in"),
            ("POST", "/portal/", admin): (403, "Sign in"),
        }
        for (method, path, form), (status, h1) in cases.items():
            r = client.request(method, path, data={"api_key": form})
            assert r.status_code == status and _page(r).findtext(".//h1") == h1
        assert client.post("/portal/", data={"api_key": key}).status_code == 200  # signed in
        pages = {
            "/portal/no-such-page": (404, "Not found"),
            "/portal/statements/999999": (404, "Not found"),
            "/portal/statements/not-a-number": (422, "That address is not valid"),
            "/portal/statements/1/download/exe": (404, "Not found"),
        }
        for path, (status, h1) in pages.items():
            r = client.get(path)
            page = _page(r)
            assert r.status_code == status, path
            assert page.findtext(".//h1") == h1, path
            assert f"Error {status}" in page.text_content()
            assert page.xpath("//a[@href='/portal/statements']"), path  # the way back
            assert "validation error" not in r.text  # the API's wording is for programs
        r = client.delete("/portal/statements")
        assert r.status_code == 405 and _page(r).findtext(".//h1") == "Not found"

        def broken(*args: object) -> None:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(api.portal, "_statements_page", broken)
        r = client.get("/portal/statements")
        assert r.status_code == 500 and _page(r).findtext(".//h1") == "Something went wrong"
        assert "secret internals" not in r.text and "Traceback" not in r.text
        # The API's own routes still answer problem+json.
        for path, status in (("/v1/no-such-thing", 404), ("/v1/payees/not-a-number", 422)):
            r = client.get(path, headers={"X-API-Key": admin})
            assert r.status_code == status
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["status"] == status


def test_format_amount_is_the_one_way_amounts_are_written() -> None:
    assert format_amount(Decimal("-1234.5"), "GBP") == "-1,234.50 GBP"
    assert format_amount(Decimal("1234567.891")) == "1,234,567.89"
    assert format_amount("-0.004", "EUR") == "0.00 EUR"  # never -0.00
    assert format_amount(Decimal("0.125")) == "0.12"  # half-even, like schemas.money.cents
    assert format_amount(Decimal("1234.5"), "EUR", locale="de") == "1.234,50 EUR"
    assert format_amount(Decimal("-1234.5"), locale="fr") == "-1\u202f234,50"
    assert format_amount("") == ""  # not a number: as it is
