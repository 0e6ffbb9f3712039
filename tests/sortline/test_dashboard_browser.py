"""The operator dashboard in a real headless browser (Debian chromium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

from sortline.api import ApiServer, create_app  # noqa: E402
from sortline.config import load_config  # noqa: E402
from sortline.runtime import SortingLine  # noqa: E402

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
def url() -> Iterator[str]:
    line = SortingLine(load_config(), stepped=True, plc_port=0)
    line.start()
    api = ApiServer(create_app(line), "127.0.0.1", 0)
    api.start()
    try:
        line.run_frames(150)
        yield f"http://127.0.0.1:{api.port}/"
    finally:
        api.stop()
        line.stop()


def test_operator_sees_state_composition_and_can_stop_and_restart(url: str, tmp_path: Path) -> None:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url)
            expect = playwright_api.expect
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
            expect(page.locator("#alarms li").first).to_contain_text("stop by dashboard")
            page.click("button[data-cmd=reset]")
            expect(page.locator("#state")).to_have_text("IDLE")
            page.click("button[data-cmd=start]")
            expect(page.locator("#state")).to_have_text("EXECUTE")
            expect(page.locator("#msg")).to_have_text("")
        finally:
            browser.close()
