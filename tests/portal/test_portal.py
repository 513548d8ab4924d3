"""The payee portal in a real browser: headless Chromium (Selenium) against the app served by
a real uvicorn on loopback, on a locked period of the sample label.

A payee signs in with their key, sees their statements (and only theirs), opens one, downloads
a file that is byte for byte the rendered statement, and reads the hostile track title as
text. A wrong key gets the form back with an error."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from api.app import create_app
from api.portal import COOKIE
from pipelines.statements import render
from pipelines.statements.data import Statement, load_statement
from schemas.store import db
from schemas.store.keys import issue_key
from schemas.store.models import Role
from tests.statements.conftest import HOSTILE_TITLE, SECRET, LockedPeriod, build_locked_period

pytestmark = pytest.mark.integration
ARTIFACTS = Path(os.environ.get("TM_TEST_ARTIFACTS", "var/test-artifacts"))


@dataclass
class Portal:
    period: LockedPeriod
    url: str
    mara_key: str
    admin_key: str
    downloads: Path

    def statement(self, payee: str) -> Statement:
        sid = self.period.statement_ids()[self.period.payee_id(payee)]
        return load_statement(
            self.period.factory, self.period.data, org_id=self.period.org_id, statement_id=sid
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    root = tmp_path_factory.mktemp("portal")
    p = build_locked_period(root)
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
    downloads = root / "downloads"
    downloads.mkdir()
    try:
        yield Portal(p, url, mara, p.admin_key, downloads)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        p.factory.kw["bind"].dispose()


@pytest.fixture(scope="module")
def browser(portal: Portal) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(portal.downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(
        service=Service(executable_path="/usr/bin/chromedriver"), options=options
    )
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def _sign_in(browser: webdriver.Chrome, portal: Portal, key: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{portal.url}/portal/")
    field = browser.find_element(By.CSS_SELECTOR, "label[for=api_key] + input#api_key")
    field.send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "form.sign-in button[type=submit]").click()


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
    assert cells[3:6] == [str(st.figures[f]) for f in ("earnings", "payable", "closing")]
    svg = browser.find_element(By.CSS_SELECTOR, "figure.chart svg")
    assert svg.get_attribute("role") == "img"
    desc = svg.find_element(By.TAG_NAME, "desc").get_attribute("textContent")
    assert desc == f"2026-H1: {st.figures['closing']} {st.currency}"
    history = browser.find_elements(By.CSS_SELECTOR, "table.history")
    assert len(history) == len(st.contracts)
    # Another payee's statement is not there, and asking for it by id is a 404 page.
    other = portal.period.statement_ids()[portal.period.payee_id("Lena Brandt")]
    browser.get(f"{portal.url}/portal/statements/{other}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_statement_page_shows_the_hostile_title_as_text_and_downloads_exact_bytes(
    browser: webdriver.Chrome, portal: Portal
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
    assert f"Closing balance {st.figures['closing']}" in figures

    shot = ARTIFACTS / "portal-statement.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 1000

    for fmt in ("csv", "pdf"):
        browser.find_element(By.CSS_SELECTOR, f"a[href$='/download/{fmt}']").click()
        got = _wait_for_file(portal.downloads, f"{st.file_stem}.{fmt}")
        expected = render(st, fmt)
        assert hashlib.sha256(got.read_bytes()).digest() == hashlib.sha256(expected).digest()


def test_sign_out_ends_the_session(browser: webdriver.Chrome, portal: Portal) -> None:
    _sign_in(browser, portal, portal.mara_key)
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    assert browser.get_cookie(COOKIE) is None
    browser.get(f"{portal.url}/portal/statements")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"
