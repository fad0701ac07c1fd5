"""End to end in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Locally the tests skip with a reason when Chromium is absent; under CI (CI=true) they fail instead, so a
missing browser never passes silently. `.ci/install-browser.sh` installs it with apt.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from review_testdata import EVIL

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)


def _need_browser() -> None:
    missing = [n for n, p in (("chromium", CHROMIUM), ("chromium-driver", DRIVER)) if not p]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install 'pfs[test]')")
    if missing:
        msg = f"browser tests need {', '.join(missing)} (install: bash .ci/install-browser.sh)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(state):
    """The review app under a real uvicorn on a free local port."""
    _need_browser()
    import uvicorn

    from pfs.review.app import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning",
                                        access_log=False))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition, seconds: float = 10):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def _ready(driver) -> None:
    """The page's script has set up its keys (keys sent earlier would be lost)."""
    _wait(driver, lambda d: d.execute_script("return document.body && document.body.dataset.ready === '1'"))


def _fetch_text(driver, url: str) -> str:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => r.text()).then(done);", url)


def test_review_a_patient_with_the_keyboard_and_export(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    _ready(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#patients tbody tr.row")
    assert len(rows) == 4
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("j")  # select the first patient, open it with Enter
    body.send_keys("\n")
    _wait(browser, lambda d: "/patients/P0001" in d.current_url)
    _ready(browser)
    deciding = browser.find_element(By.CSS_SELECTOR, "details.report.deciding")
    assert deciding.get_attribute("open") is not None
    marks = deciding.find_elements(By.CSS_SELECTOR, "mark.hl-evidence")
    assert marks and marks[0].is_displayed() and "BT-RADS" in marks[0].text
    assert browser.find_element(By.CSS_SELECTOR, "svg.timeline circle.cand-accepted")
    browser.find_element(By.TAG_NAME, "body").send_keys("a")
    _wait(browser, lambda d: "/patients/P0002" in d.current_url)  # saved, then on to the next patient
    csv = _fetch_text(browser, server + "/api/export/annotations.csv")
    frame = pd.read_csv(io.StringIO(csv), dtype=str, keep_default_na=False)
    assert frame.to_dict("records") == [
        {"patient_id": "P0001", "progressed": "1", "progression_date": "2020-01-08", "censor_date": ""}]
    href = browser.find_element(By.ID, "export-link").get_attribute("href")
    assert href.endswith("/api/export/annotations.csv")


def test_type_a_date_and_a_comment(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/patients/P0003")
    _ready(browser)
    browser.find_element(By.ID, "advance").click()  # stay on the page
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("c")
    browser.switch_to.active_element.send_keys("growth on the last scan")
    browser.switch_to.active_element.send_keys("\ue00c")  # Escape leaves the field
    browser.execute_script("document.getElementById('progression-date').value = '2019-07-10'")
    browser.find_element(By.ID, "set-date").click()
    _wait(browser, lambda d: "saved" in d.find_element(By.ID, "save-status").text)
    assert "changed" in browser.find_element(By.ID, "save-status").text
    v = _fetch_text(browser, server + "/api/patients/P0003")
    assert '"comment":"growth on the last scan"' in v.replace(": ", ":") and "2019-07-10" in v


def test_script_in_a_report_shows_as_text_and_does_not_run(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/patients/P0001")
    assert browser.execute_script("return window.__pwned === undefined")
    texts = [e.get_attribute("textContent") for e in browser.find_elements(By.CSS_SELECTOR, "pre.report-text")]
    assert any(EVIL in t for t in texts)
    assert not browser.find_elements(By.XPATH, "//pre//script")


def test_a_missing_browser_fails_under_ci_and_skips_locally(monkeypatch):
    import sys

    module = sys.modules[__name__]
    monkeypatch.setattr(module, "CHROMIUM", None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium"):
        _need_browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="install-browser.sh"):
        _need_browser()
