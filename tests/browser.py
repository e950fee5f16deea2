"""Headless Chromium for the UI tests: Debian's `chromium`, driven by Playwright through its executable path.

Playwright cannot download a browser of its own here, so the first test that needs one installs Debian's
package when it is missing. Screenshots go to `test-artifacts/browser/`, kept after the run.
"""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.dagster_dev_process import PROJECT_ROOT
from tests.debian import ensure_package

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "browser"
PAGE_TIMEOUT_MS = 60_000
# Chromium as a test runs it: no sandbox (the tests may run as root), and none of the background
# connections that a machine with no network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_executable() -> str:
    """Debian's Chromium, installed with apt-get first if it is not there yet."""
    ensure_package("chromium", lambda: shutil.which("chromium") is not None)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


@pytest.fixture(name="chromium", scope="session")
def chromium_fixture() -> str:
    return chromium_executable()


@pytest.fixture(name="page")
def page_fixture(chromium: str, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh headless Chromium, in UTC with 24-hour times; on a failure its last view is
    saved as `<test name>-failure.png`. The browser is closed whatever happens."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        try:
            context = browser.new_context(
                viewport={"width": 1400, "height": 900}, timezone_id="UTC", locale="en-GB"
            )
            # Upper bounds, not waits: a page that shows what is expected sooner passes sooner. Playwright's
            # own 5 s for an `expect` is too short for the UI to draw the asset graph on a busy machine.
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            expect.set_options(timeout=PAGE_TIMEOUT_MS)
            page = context.new_page()
            # The webserver may greet a first visit with a newsletter dialog over the page.
            page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda button: button.click())
            yield page
            if request.node.stash.get(FAILED, False):
                page.screenshot(path=ARTIFACTS / f"{request.node.name}-failure.png", full_page=True)
        finally:
            browser.close()


FAILED = pytest.StashKey[bool]()


def screenshot(page: Page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path)
    return path
