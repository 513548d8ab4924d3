"""The payee portal in a real browser: headless Chromium (Selenium) against the app served by
a real uvicorn on loopback, on a locked period of the sample label.

A payee signs in with their key, sees their statements (and only theirs), opens one, downloads
a file that is byte for byte the rendered statement, and reads the hostile track title as
text. A wrong key gets the form back with an error."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import lxml.html
import pypdfium2
import pytest
import uvicorn
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from api.app import create_app
from api.portal import COOKIE
from pipelines.layout import DataDir
from pipelines.statements import render
from pipelines.statements.data import Statement, load_statement
from pipelines.statements.export import MANIFEST
from schemas.money import format_amount
from schemas.statement_figures import SIGNED, SUMMARY_FIELDS
from schemas.store import db
from schemas.store.keys import issue_key
from schemas.store.models import Payee, Role
from tests.servers.plugin import Chromium
from tests.snapshots import Snapshots
from tests.statements.conftest import HOSTILE_TITLE, SECRET, LockedPeriod, copy_locked_period

pytestmark = pytest.mark.integration
ARTIFACTS = Path(os.environ.get("TM_TEST_ARTIFACTS", "var/test-artifacts"))


@dataclass
class Portal:
    period: LockedPeriod
    url: str
    mara_key: str
    admin_key: str

    def statement(self, payee: str) -> Statement:
        sid = self.period.statement_ids()[self.period.payee_id(payee)]
        return load_statement(
            self.period.factory, self.period.data, org_id=self.period.org_id, statement_id=sid
        )


# closing = opening + sum(sign x movement), with the signs of the one table of statement
# figures (recouped and carried forward are not terms) and the portal's pool settlement.
SIGNS = SIGNED | {"settlement": 1}
EVERY_MOVEMENT = set(SUMMARY_FIELDS)


def _assert_adds_up(values: dict[str | None, Decimal]) -> None:
    assert set(values) >= EVERY_MOVEMENT, values
    reached = values["opening"] + sum(
        (sign * values[key] for key, sign in SIGNS.items() if key in values), Decimal(0)
    )
    assert reached == values["closing"], values
    assert values["carried_forward"] == values["closing"]


def _amount(text: str) -> Decimal:
    """An amount as the portal writes it (``-1,234.56``): with its thousands separators."""
    assert re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d\d", text), text
    return Decimal(text.replace(",", ""))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, snapshots: Snapshots) -> Iterator[Portal]:
    p = copy_locked_period(snapshots, tmp_path_factory.mktemp("portal") / "period")
    with db.transaction(p.factory, actor="test") as s:
        _, mara = issue_key(
            s,
            org_id=p.org_id,
            role=Role.PAYEE,
            payee_id=p.payee_id("Mara Ellison"),
            secret_key=SECRET,
        )
    app = create_app(p.factory, secret_key=SECRET, data_dir=p.data)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    try:
        yield Portal(p, url, mara, p.admin_key)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        p.factory.kw["bind"].dispose()


@pytest.fixture(scope="module")
def browser(chromium: Chromium) -> webdriver.Chrome:
    """The session's headless Chromium (tests/servers/plugin.py)."""
    return chromium.driver


def _sign_in(browser: webdriver.Chrome, portal: Portal, key: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{portal.url}/portal/")
    field = browser.find_element(By.CSS_SELECTOR, "label[for=api_key] + input#api_key")
    field.send_keys(key)
    button = browser.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]")
    button.click()
    # Wait for the next page (the form again, or the statements) to replace this one.
    WebDriverWait(browser, 20).until(expected_conditions.staleness_of(button))


def _wait_for_file(folder: Path, name: str, timeout: float = 20) -> Path:
    path = folder / name
    deadline = time.monotonic() + timeout
    while not path.exists() or any(folder.glob("*.crdownload")):
        assert time.monotonic() < deadline, f"{name} was not downloaded: {list(folder.iterdir())}"
        time.sleep(0.1)
    return path


def test_wrong_key_shows_the_form_again_with_an_error(
    browser: webdriver.Chrome, portal: Portal
) -> None:
    _sign_in(browser, portal, "tm_deadbeef_not-a-real-key")
    alert = browser.find_element(By.CSS_SELECTOR, "[role=alert]")
    assert "not recognised" in alert.text
    assert browser.find_element(By.ID, "api_key").get_attribute("aria-invalid") == "true"
    assert browser.current_url.rstrip("/").endswith("/portal")
    assert browser.get_cookie(COOKIE) is None
    r = httpx.post(f"{portal.url}/portal/", data={"api_key": "tm_deadbeef_not-a-real-key"})
    assert r.status_code == 401
    r = httpx.post(f"{portal.url}/portal/", data={"api_key": portal.admin_key})
    assert r.status_code == 403 and "The portal is for payees" in r.text


def test_payee_signs_in_and_sees_only_their_statements(
    browser: webdriver.Chrome, portal: Portal
) -> None:
    _sign_in(browser, portal, portal.mara_key)
    assert browser.current_url.endswith("/portal/statements")
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert portal.mara_key not in cookie["value"]
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Statements for Mara Ellison"
    table = browser.find_element(By.CSS_SELECTOR, "table.statements")
    assert "approved periods" in table.find_element(By.TAG_NAME, "caption").text
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    st = portal.statement("Mara Ellison")
    assert len(rows) == 1
    cells = [c.text for c in rows[0].find_elements(By.CSS_SELECTOR, "th, td")]
    assert cells[0] == "2026-H1" and cells[2] == "GBP"
    assert cells[3:6] == [format_amount(st.figures[f]) for f in ("earnings", "payable", "closing")]
    svg = browser.find_element(By.CSS_SELECTOR, "figure.chart svg")
    assert svg.get_attribute("role") == "img"
    desc = svg.find_element(By.TAG_NAME, "desc").get_attribute("textContent")
    assert desc == f"2026-H1: {format_amount(st.figures['closing'], st.currency)}"
    # One table per contract, and first the contracts added up (what the chart plots).
    history = browser.find_elements(By.CSS_SELECTOR, "table.history")
    assert len(history) == len(st.contracts) + 1
    assert "total" in (history[0].get_attribute("class") or "")
    for table in history:
        caption = table.find_element(By.TAG_NAME, "caption").text
        assert "Closing = opening + earnings" in caption
        heads = table.find_elements(By.CSS_SELECTOR, "thead th")
        assert all(h.get_attribute("scope") == "col" for h in heads)
        for row in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
            assert row.find_element(By.TAG_NAME, "th").get_attribute("scope") == "row"
            values = {
                td.get_attribute("data-key"): _amount(td.text)
                for td in row.find_elements(By.CSS_SELECTOR, "td[data-key]")
            }
            _assert_adds_up(values)
    total_closing = history[0].find_element(By.CSS_SELECTOR, "tbody td[data-key=closing]").text
    assert total_closing == format_amount(st.figures["closing"])  # the plotted value, in the table
    # Another payee's statement is not there, and asking for it by id is a 404 page.
    other = portal.period.statement_ids()[portal.period.payee_id("Lena Brandt")]
    browser.get(f"{portal.url}/portal/statements/{other}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_statement_page_shows_the_hostile_title_as_text_and_downloads_exact_bytes(
    browser: webdriver.Chrome, portal: Portal, chromium: Chromium
) -> None:
    _sign_in(browser, portal, portal.mara_key)
    st = portal.statement("Mara Ellison")
    browser.find_element(By.LINK_TEXT, "2026-H1").click()
    assert browser.current_url.endswith(f"/portal/statements/{st.statement_id}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Statement 2026-H1 · GBP"
    titles = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.tracks th.title")]
    assert HOSTILE_TITLE in titles  # shown as text, never as markup
    assert "&lt;script&gt;alert" in browser.page_source
    assert browser.find_elements(By.XPATH, "//main//script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    figures = browser.find_element(By.CSS_SELECTOR, "table.figures").text
    assert f"Closing balance {format_amount(st.figures['closing'])}" in figures

    shot = ARTIFACTS / "portal-statement.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 1000

    for fmt in ("csv", "pdf"):
        browser.find_element(By.CSS_SELECTOR, f"a[href$='/download/{fmt}']").click()
        got = _wait_for_file(chromium.downloads, f"{st.file_stem}.{fmt}")
        expected = render(st, fmt)
        assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(expected).digest()


def test_sign_out_ends_the_session(browser: webdriver.Chrome, portal: Portal) -> None:
    _sign_in(browser, portal, portal.mara_key)
    button = browser.find_element(By.CSS_SELECTOR, "form.logout button")
    button.click()
    # the click only starts the form's POST: wait for its response to replace the page
    WebDriverWait(browser, 20).until(expected_conditions.staleness_of(button))
    assert browser.get_cookie(COOKIE) is None
    browser.get(f"{portal.url}/portal/statements")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"


# A phone-sized viewport (an iPhone's CSS pixels), emulated by Chromium itself.
PHONE = {"width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True}


def test_on_a_phone_nothing_scrolls_sideways_and_the_pooled_pdf_page_is_drawn(
    browser: webdriver.Chrome, portal: Portal
) -> None:
    """At 375 px the list, a statement and an error page fit the screen (wide tables scroll
    in their own box, the list becomes cards); screenshots of them and of the pooled
    statement's PDF page (drawn by PDFium, Chromium's PDF engine) go to TM_TEST_ARTIFACTS."""
    st = portal.statement("Mara Ellison")
    assert st.pooled  # her contracts are cross-collateralised in the sample label
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = {
        "portal-phone-statements.png": "/portal/statements",
        "portal-phone-statement.png": f"/portal/statements/{st.statement_id}",
        "portal-phone-error.png": "/portal/statements/not-a-number",
    }
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    try:
        _sign_in(browser, portal, portal.mara_key)
        for name, path in pages.items():
            browser.get(portal.url + path)
            scroll, inner = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert inner == PHONE["width"] and scroll <= inner, (path, scroll, inner)
            shot = ARTIFACTS / name
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
            if path == "/portal/statements":  # one card per statement, values labelled
                cell = browser.find_element(By.CSS_SELECTOR, "table.statements td.num")
                assert cell.value_of_css_property("display") == "flex"
                label = browser.execute_script(
                    "return getComputedStyle(arguments[0], '::before').content", cell
                )
                assert label == '"Royalties earned"'
                assert cell.text == format_amount(st.figures["earnings"])
            if path.endswith("not-a-number"):
                assert browser.find_element(By.TAG_NAME, "h1").text == "That address is not valid"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    pdf = pypdfium2.PdfDocument(render(st, "pdf"))
    try:
        texts = [page.get_textpage().get_text_range() for page in pdf]
        number = next(
            i for i, text in enumerate(texts) if "Contracts and cross-collateralised pools" in text
        )
        for c in st.contracts:  # nothing in the pool tables is cut short ("MARA-EL...")
            assert c["reference"] in texts[number] and (c["pool"] or "") in texts[number]
            assert format_amount(c["closing"]) in texts[number]
        image = pdf[number].render(scale=2).to_pil()
        image.save(ARTIFACTS / "statement-pooled-page.png")
        assert image.width > 1000 and image.getextrema() != ((255, 255), (255, 255), (255, 255))
    finally:
        pdf.close()


# --- the list page, without a browser --------------------------------------------------------
def _client(portal: Portal, key: str) -> TestClient:
    p = portal.period
    client = TestClient(create_app(p.factory, secret_key=SECRET, data_dir=p.data))
    r = client.post("/portal/", data={"api_key": key}, follow_redirects=False)
    assert r.status_code == 303 and COOKIE in r.cookies
    return client


def _never(*args: object, **kwargs: object) -> None:
    raise AssertionError("the list page must not load statements")


def _forbid_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import api.portal
    import api.routes.statements
    import pipelines.statements.data

    for module, name in (
        (pipelines.statements.data, "iter_statements"),
        (pipelines.statements.data, "load_statement"),
        (api.routes.statements, "load_statement"),
        (api.routes.statements, "load"),
        (api.portal, "load"),
    ):
        monkeypatch.setattr(module, name, _never)


def _invoice_link(html: str, statement_id: int) -> bool:
    return f'href="/portal/statements/{statement_id}/download/invoice"' in html


def test_list_page_never_loads_a_statement_and_takes_invoices_from_the_manifest(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = portal.period
    sid = p.statement_ids()[p.payee_id("Mara Ellison")]
    st = portal.statement("Mara Ellison")
    _forbid_loading(monkeypatch)
    folder = DataDir(p.data).statements(p.org_id, p.period, st.version)
    manifest = folder / MANIFEST
    assert not manifest.exists()
    with _client(portal, portal.mara_key) as client:
        # Not exported: store facts decide (Mara's statement has nothing payable: no invoice).
        r = client.get("/portal/statements")
        assert r.status_code == 200, r.text
        assert f'href="/portal/statements/{sid}/download/pdf"' in r.text
        assert st.figures["payable"] == 0 and not _invoice_link(r.text, sid)
        folder.mkdir(parents=True)
        try:
            # Exported with an invoice for this statement: the manifest decides, link shown.
            entry = {"kind": "invoice", "format": "pdf", "statement_id": sid, "path": "x.pdf"}
            manifest.write_text(json.dumps({"run_id": p.run_id, "files": [entry]}))
            r = client.get("/portal/statements")
            assert r.status_code == 200 and _invoice_link(r.text, sid)
            # Another run's manifest is not this run's export: store facts again.
            manifest.write_text(json.dumps({"run_id": p.run_id + 1000, "files": [entry]}))
            r = client.get("/portal/statements")
            assert r.status_code == 200 and not _invoice_link(r.text, sid)
            # A broken manifest does not break the page.
            manifest.write_text('{"run_id": ')
            r = client.get("/portal/statements")
            assert r.status_code == 200 and f"/portal/statements/{sid}" in r.text
        finally:
            manifest.unlink(missing_ok=True)
            folder.rmdir()
        # The patch is in force: the statement page, which does load, fails.
        with pytest.raises(AssertionError, match="must not load"):
            client.get(f"/portal/statements/{sid}")


def _set_consent(portal: Portal, payee_id: int, consent: bool) -> bool:
    """Set the payee's self-billing consent in the store; what it was."""
    with db.transaction(portal.period.factory, actor="test") as s:
        payee = s.get(Payee, payee_id)
        assert payee is not None
        was = bool(payee.self_billing_consent)
        payee.self_billing_consent = consent
    return was


def test_list_page_without_an_export_decides_the_invoice_from_store_facts(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kofi's statement has something payable: the list offers his invoice exactly while the
    store says he agreed to self-billing, without loading the statement."""
    p = portal.period
    kofi = p.payee_id("Kofi Mensah")
    sid = p.statement_ids()[kofi]
    assert portal.statement("Kofi Mensah").figures["payable"] > 0
    with db.transaction(p.factory, actor="test") as s:
        _, key = issue_key(s, org_id=p.org_id, role=Role.PAYEE, payee_id=kofi, secret_key=SECRET)
    _forbid_loading(monkeypatch)
    was = _set_consent(portal, kofi, True)
    try:
        with _client(portal, key) as client:
            r = client.get("/portal/statements")
            assert r.status_code == 200 and _invoice_link(r.text, sid)
            # Once the run is exported its manifest decides: no invoice there, no link.
            folder = DataDir(p.data).statements(p.org_id, p.period, 1)
            folder.mkdir(parents=True)
            entry = {"kind": "statement", "format": "csv", "statement_id": sid, "path": "x.csv"}
            try:
                (folder / MANIFEST).write_text(json.dumps({"run_id": p.run_id, "files": [entry]}))
                r = client.get("/portal/statements")
                assert r.status_code == 200 and not _invoice_link(r.text, sid)
            finally:
                (folder / MANIFEST).unlink()
                folder.rmdir()
            _set_consent(portal, kofi, False)
            r = client.get("/portal/statements")
            assert r.status_code == 200 and not _invoice_link(r.text, sid)
            assert f'href="/portal/statements/{sid}/download/pdf"' in r.text
    finally:
        _set_consent(portal, kofi, was)


def test_history_tables_add_up_and_hold_the_plotted_values(portal: Portal) -> None:
    st = portal.statement("Mara Ellison")
    with _client(portal, portal.mara_key) as client:
        r = client.get("/portal/statements")
    assert r.status_code == 200
    page = lxml.html.fromstring(r.text)
    tables = page.xpath("//table[contains(concat(' ', @class, ' '), ' history ')]")
    assert len(tables) == len(st.contracts) + 1  # the contracts added up, then each contract
    plotted: dict[str, Decimal] = {}
    for desc in page.xpath("//figure[@class='chart']//*[local-name()='desc']"):
        for part in desc.text_content().split("; "):
            period, value = part.split(": ")
            plotted[period] = _amount(value.split()[0])
    assert plotted == {st.period: st.figures["closing"]}
    rows_by_table = []
    for table in tables:
        caption = table.xpath("caption")[0].text_content()
        assert "Closing = opening + earnings" in caption and "Carried forward" in caption
        heads = table.xpath("thead/tr/th")
        assert heads and all(h.get("scope") == "col" for h in heads)
        shown = {h.get("data-key") for h in heads} - {None}
        assert shown >= EVERY_MOVEMENT
        rows = {}
        for tr in table.xpath("tbody/tr"):
            th = tr.xpath("th")[0]
            assert th.get("scope") == "row"
            cells = tr.xpath("td[@data-key]")
            values = {td.get("data-key"): _amount(td.text_content()) for td in cells}
            _assert_adds_up(values)
            rows[th.text_content()] = values
        rows_by_table.append(rows)
    total, *contracts = rows_by_table
    # The first table is the contracts added up, and its Closing column is what is plotted.
    assert {period: v["closing"] for period, v in total.items()} == plotted
    for period, values in total.items():
        for key, value in values.items():
            assert value == sum((c[period][key] for c in contracts if period in c), Decimal(0))
    # The statement's own figures are the same movements.
    for key in EVERY_MOVEMENT:
        assert total[st.period][key] == st.figures[key], key
