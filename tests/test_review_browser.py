"""A real browser on the review page: headless Chromium driven by Selenium.

It loads the page of a running ``fewshot review``, accepts and corrects images with the
keyboard (top-k digit, typed label), skips and undoes, reloads and sees the decisions, exports
the corrected CSV, and checks that the browser logged no error (a blocked script or style
would show as one under the page's Content-Security-Policy). Skipped, with the reason, where
Selenium, Chromium or its driver is missing (``.ci/run`` installs Debian's ``chromium`` and
``chromium-driver``). ``FEWSHOT_REVIEW_SCREENSHOT=FILE`` keeps a screenshot of the page.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from review_fixtures import review_workspace

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the review extra)")
pytest.importorskip("uvicorn")

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")


def _which(names) -> str | None:
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture
def browser(tmp_path):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _which(BROWSERS), _which(DRIVERS)
    if binary is None or driver_path is None:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument("--window-size=1360,900")
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as err:
        pytest.skip(f"Chromium would not start: {str(err).splitlines()[0]}")
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def server(tmp_path):
    csv_path, _ = review_workspace(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "fewshot_cli.app", "review", str(csv_path), "--port", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        yield info["url"], csv_path
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def _wait(driver, condition, timeout: float = 20):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def _card(driver, row: int):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'#gallery .card[data-row="{row}"]')


def _state(driver, row: int) -> tuple[str, str]:
    """(decision class, shown label) of a card."""
    from selenium.webdriver.common.by import By

    card = _card(driver, row)
    classes = set(card.get_attribute("class").split()) & {"open", "accepted", "corrected", "skipped"}
    return classes.pop(), card.find_element(By.CSS_SELECTOR, ".pred .label").text


def _press(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(keys).perform()


def _decided(driver, row: int, decision: str):
    _wait(driver, lambda d: _state(d, row)[0] == decision)


def test_keyboard_review_survives_a_reload_and_exports(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, csv_path = server
    browser.get(url + "?queue=all&sort=confidence")
    cards = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#gallery .card"))
    assert len(cards) == 12
    rows = [int(c.get_attribute("data-row")) for c in cards[:4]]
    assert browser.switch_to.active_element.get_attribute("data-row") == str(rows[0])  # focused on load
    second_choice = cards[1].find_elements(By.CSS_SELECTOR, ".top button")[1].get_attribute("data-label")

    _press(browser, "a")  # accept the first; focus moves on
    _decided(browser, rows[0], "accepted")
    _press(browser, "2")  # correct the second to its second-best label
    _decided(browser, rows[1], "corrected")
    assert _state(browser, rows[1])[1] == second_choice
    _press(browser, "c")  # type a label for the third
    field = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#typed input"))
    _wait(browser, lambda d: field.is_displayed())
    field.send_keys("<img src=x onerror=alert(1)>", Keys.ENTER)
    _decided(browser, rows[2], "corrected")
    assert _state(browser, rows[2])[1] == "<img src=x onerror=alert(1)>"  # shown as text
    reviewed = sum(
        int(a.text.split()[-1].split("/")[0])
        for a in browser.find_elements(By.CSS_SELECTOR, ".labels a[data-label]")
    )
    assert reviewed == 3  # the sidebar's per-label counts follow the decisions
    _press(browser, "s")
    _decided(browser, rows[3], "skipped")
    _press(browser, "u")  # undo the skip
    _decided(browser, rows[3], "open")
    screenshot = os.environ.get("FEWSHOT_REVIEW_SCREENSHOT")
    if screenshot:
        browser.save_screenshot(screenshot)

    browser.refresh()
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#gallery .card")) == 12)
    assert _state(browser, rows[0])[0] == "accepted"
    assert _state(browser, rows[1]) == ("corrected", second_choice)
    assert _state(browser, rows[2]) == ("corrected", "<img src=x onerror=alert(1)>")
    assert _state(browser, rows[3])[0] == "open"
    assert browser.find_element(By.ID, "reviewed").text == "3"

    browser.get(url)  # plain address: back to the view of the last decision
    _wait(browser, lambda d: "queue=all" in d.current_url and "sort=confidence" in d.current_url)

    browser.find_element(By.CSS_SELECTOR, '#export button[value="csv"]').click()
    status = _wait(browser, lambda d: d.find_element(By.ID, "status").text.startswith("wrote ") and d)
    written = Path(status.find_element(By.ID, "status").text.removeprefix("wrote "))
    exported = list(csv.DictReader(written.read_text(encoding="utf-8").splitlines()))
    decisions = sorted(r["decision"] for r in exported if r["decision"])
    assert decisions == ["accepted", "corrected", "corrected"]
    assert written.parent.parent == csv_path.with_name(csv_path.name + ".review")

    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not problems, problems  # no script error, nothing blocked by the page's policy
