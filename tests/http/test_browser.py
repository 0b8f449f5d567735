"""The dashboard and the status page in a real headless Chromium (Debian's chromium and
chromium-driver, driven by selenium): log in with a token, see today's figures and the
charts drawn, open a ticket with its internal note, read the requester's status page; no
console errors anywhere. Screenshots are kept in the test's temporary directory."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import mail, skip_or_fail
from tests.http.conftest import ADMIN_TOKEN, READ_TOKEN, Web, status_link

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless Chromium for the module (starting one is most of a test's time)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        skip_or_fail("chromium is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium') / 'profile'}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: WebDriver) -> WebDriver:
    """The module's Chromium as a new visitor: no cookies, no console lines of earlier tests."""
    chromium.get("about:blank")
    for forget in ("Network.clearBrowserCookies", "Network.clearBrowserCache"):
        chromium.execute_cdp_cmd(forget, {})  # every site's, not only the page's
    chromium.get_log("browser")  # read, so the test sees only its own
    return chromium


def _console_errors(driver: WebDriver) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _log_in(driver: WebDriver, web: Web, token: str) -> None:
    driver.get(web.base_url + "/")
    field = driver.find_element(By.NAME, "token")
    field.send_keys(token)
    field.submit()
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, "today")))


def test_dashboard_in_chromium(browser: WebDriver, sqlite_web_desk: Web, tmp_path: Path) -> None:
    web = sqlite_web_desk
    web.desk.send(mail("Mail server down", "Nobody can send since 9:00."))
    web.desk.send(mail("Printer on fire"))
    web.desk.wait_tickets(2)
    code, out = web.desk.cli(
        "ticket", "note", "MD-1", "--as", "bob@example.com", "-m", "Internal: the relay is full"
    )
    assert code == 0, out

    browser.get(web.base_url + "/")
    wrong = browser.find_element(By.NAME, "token")
    wrong.send_keys("not-the-token-at-all")
    wrong.submit()
    error = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "login-error")))
    assert "not valid" in error.text
    # The one console error so far is that refused login's own 401 (reading the log empties it).
    assert [e["message"].split(" - ")[0] for e in _console_errors(browser)] == [
        web.base_url + "/login"
    ]

    _log_in(browser, web, ADMIN_TOKEN)
    today = browser.find_element(By.ID, "today").text
    assert "2\ntickets opened" in today and "2\nopen now" in today, today
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
    assert len(charts) >= 2
    drawn = []
    for svg in charts:
        assert svg.size["width"] > 100 and svg.size["height"] > 50, svg.size
        drawn.append(len(svg.find_elements(By.CSS_SELECTOR, "path, rect, line, use, text")))
    assert min(drawn) >= 1 and sum(drawn) > 50, drawn
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    browser.find_element(By.LINK_TEXT, "MD-1").click()
    WebDriverWait(browser, 30).until(ec.title_contains("MD-1"))
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "Mail server down" in page and "Nobody can send since 9:00." in page
    internal = browser.find_elements(By.CSS_SELECTOR, ".message.internal")
    assert any("the relay is full" in m.text for m in internal)
    browser.save_screenshot(str(tmp_path / "ticket.png"))
    assert _console_errors(browser) == []

    # A read token is an operator: the same ticket without the internal note.
    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    _log_in(browser, web, READ_TOKEN)
    browser.get(web.base_url + "/tickets/MD-1")
    assert "the relay is full" not in browser.find_element(By.TAG_NAME, "main").text
    assert "internal message(s) not shown" in browser.find_element(By.ID, "internal-hidden").text
    assert _console_errors(browser) == []
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def test_status_page_in_chromium(browser: WebDriver, sqlite_web_desk: Web, tmp_path: Path) -> None:
    web = sqlite_web_desk
    web.desk.send(mail("VPN broken", "It drops every five minutes."))
    web.desk.wait_tickets(1)
    link = status_link(web, "VPN broken")
    code, out = web.desk.cli(
        "ticket", "note", "MD-1", "--as", "alice@example.com", "-m", "Internal: blame the ISP"
    )
    assert code == 0, out

    browser.get(link)
    assert "Status: open" in browser.find_element(By.ID, "status").text  # the note opened it
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "It drops every five minutes." in text and "blame the ISP" not in text
    browser.save_screenshot(str(tmp_path / "status.png"))
    assert _console_errors(browser) == []
