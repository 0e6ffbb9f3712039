"""The operator dashboard in a real headless browser (Debian chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")


from .conftest import ApiKeys, served_line  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def url(api_keys: ApiKeys) -> Iterator[str]:
    with served_line(api_keys, 150) as (_, url):
        yield url + "/"


def test_without_a_key_the_data_is_refused(url: str, tmp_path: Path) -> None:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            statuses: list[int] = []
            page.on("response", lambda r: statuses.append(r.status) if "/whoami" in r.url else None)
            page.goto(url)
            expect = playwright_api.expect
            expect(page.locator("#authmsg")).to_have_text("API key needed")
            for cmd in ("start", "stop", "reset"):
                expect(page.locator(f"button[data-cmd={cmd}]")).to_be_disabled()
            page.fill("#key", "sl_not-a-key")
            page.click("#login button[type=submit]")
            expect(page.locator("#authmsg")).to_contain_text("key refused")
            assert statuses == [401]
            expect(page.locator("#state")).not_to_have_text("EXECUTE")
            expect(page.locator("#frames")).to_have_text("–")
            # the page's own fetch, without a key
            status = page.evaluate("fetch('/status').then((r) => r.status)")
            assert status == 401
            page.screenshot(path=str(tmp_path / "dashboard-no-key.png"))
        finally:
            browser.close()


def test_maintenance_key_sees_data_but_no_commands(url: str, api_keys: ApiKeys) -> None:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.fill("#key", api_keys.key["maintenance"])
            page.click("#login button[type=submit]")
            expect = playwright_api.expect
            expect(page.locator("#who")).to_have_text("maint-max (maintenance)")
            expect(page.locator("#state")).to_have_text("EXECUTE", timeout=5000)
            for cmd in ("start", "stop", "reset"):
                expect(page.locator(f"button[data-cmd={cmd}]")).to_be_disabled()
        finally:
            browser.close()


def test_operator_sees_state_composition_and_can_stop_and_restart(
    url: str, tmp_path: Path, api_keys: ApiKeys
) -> None:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            page.fill("#key", api_keys.key["operator"])
            page.click("#login button[type=submit]")
            expect = playwright_api.expect
            expect(page.locator("#who")).to_have_text("op-ann (operator)")
            expect(page.locator("#state")).to_have_text("EXECUTE", timeout=5000)
            expect(page.locator("#line")).to_have_text("virtual-plant")
            expect(page.locator("#frames")).to_have_text("150")
            expect(page.locator("#composition .bar")).to_have_count(10)
            expect(page.locator("#link")).to_contain_text("live")
            page.screenshot(path=str(tmp_path / "dashboard.png"))

            page.click("button[data-cmd=start]")  # not allowed while executing
            expect(page.locator("#msg")).to_contain_text("cannot start while EXECUTE")
            page.click("button[data-cmd=stop]")
            expect(page.locator("#state")).to_have_text("STOPPED")
            expect(page.locator("#alarms li").first).to_contain_text("stop by op-ann")
            page.click("button[data-cmd=reset]")
            expect(page.locator("#state")).to_have_text("IDLE")
            page.click("button[data-cmd=start]")
            expect(page.locator("#state")).to_have_text("EXECUTE")
            expect(page.locator("#msg")).to_have_text("")
            page.reload()  # the key stays for this tab (sessionStorage)
            expect(page.locator("#who")).to_have_text("op-ann (operator)")
            assert (
                page.evaluate("sessionStorage.getItem('sortline.key')") == api_keys.key["operator"]
            )
        finally:
            browser.close()
