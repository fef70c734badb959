"""A person's view of Flower: headless Chromium logs in with basic auth and finds our job."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

import emp_tasks
from tests.conftest import free_port
from tests.integration.processes import RedisServer, WorkerProcess
from tests.integration.test_flower_auth import PASSWORD, USER, flower_env, running_flower

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "flower-tasks.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def browser_binaries() -> tuple[str, str] | None:
    """Chromium and its driver, at Debian's paths or on PATH; None when either is missing."""
    chromium = shutil.which(CHROMIUM) or shutil.which("chromium")
    driver = shutil.which(CHROMEDRIVER) or shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


BINARIES = browser_binaries()
# Checked at collection, so a machine without a browser starts neither Flower nor a worker.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        BINARIES is None,
        reason="chromium and chromedriver not found: `make system-deps` installs them",
    ),
]


@pytest.fixture(scope="module")
def flower(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cwd = tmp_path_factory.mktemp("flower-browser")
    with running_flower(
        free_port(), flower_env(FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}"), cwd
    ) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    assert BINARIES is not None
    chromium, chromedriver = BINARIES
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_until_flower_has(flower: str, job_id: str, timeout: float = 15) -> None:
    """Until Flower's API reports the job finished: its events arrive a moment after the result."""
    deadline = time.monotonic() + timeout
    url = f"{flower}/api/task/info/{job_id}"
    while True:
        reply = requests.get(url, auth=(USER, PASSWORD), timeout=5)
        if reply.ok and reply.json().get("state") == "SUCCESS":
            return
        assert time.monotonic() < deadline, f"Flower did not record job {job_id}"
        time.sleep(0.2)


def test_logged_in_browser_sees_the_job_on_flowers_tasks_page(
    flower: str, mock_worker: WorkerProcess, browser: WebDriver
) -> None:
    job = emp_tasks.submit("mock", {"delay_ms": 200})
    job.get(timeout=30)
    wait_until_flower_has(flower, job.id)

    # Without credentials Flower only challenges (headless Chromium shows a blank page for it).
    browser.get(f"{flower}/tasks")
    assert browser.find_elements(By.ID, "tasks-table") == []
    assert job.id not in browser.page_source

    # Credentials in the URL: Chromium answers Flower's Basic challenge with them, and reuses them
    # for the page's own requests (the task table's XHR to /tasks/datatable).
    browser.get(flower.replace("http://", f"http://{USER}:{PASSWORD}@") + "/tasks")
    # The table is filled by an XHR after the page loads: wait for the job's row, not the page.
    row = WebDriverWait(browser, 20, poll_frequency=0.2).until(
        ec.presence_of_element_located((By.XPATH, f"//tr[contains(., '{job.id}')]"))
    )
    assert "emp.mock" in row.text
    assert "SUCCESS" in row.text

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.read_bytes().startswith(PNG_MAGIC)
