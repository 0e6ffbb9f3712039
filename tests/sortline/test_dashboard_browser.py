"""The operator dashboard in a real headless browser (Debian chromium), against
a real (stepped) line behind its status API on loopback: sign-in and roles,
live numbers from the stream, the camera preview, the charts and the valve
heat map drawn, commands, recipe choice, alarms and lots, exports; every test
saves a screenshot under its pytest tmp path."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

playwright_api = pytest.importorskip("playwright.sync_api")


from sortline.config import load_config  # noqa: E402
from sortline.runtime import SortingLine  # noqa: E402

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

COPPER_ONLY = """name = "copper-only"
version = 1
[fractions]
eject = 0
[classes.copper]
fraction = "eject"
"""

# non-background pixels of a canvas (the page's own pixels, not a screenshot)
INKED = """(id) => { const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""


@pytest.fixture(scope="module")
def served(
    api_keys: ApiKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SortingLine, str]]:
    tmp = tmp_path_factory.mktemp("dashboard")
    cfg = tmp / "line.toml"
    cfg.write_text('[records]\ndir = "records"\n[recipes]\ndir = "recipes"\n')
    with served_line(api_keys, 150, cfg=load_config(cfg)) as (line, url):
        yield line, url + "/"


@pytest.fixture(scope="module")
def url(served: tuple[SortingLine, str]) -> str:
    return served[1]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            p = browser.new_page(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
            yield p
            p.screenshot(path=str(tmp_path / "dashboard-end.png"), full_page=True)
        finally:
            browser.close()


def sign_in(page: Any, url: str, key: str, who: str) -> None:
    page.goto(url)
    page.fill("#key", key)
    page.click("#login button[type=submit]")
    playwright_api.expect(page.locator("#who")).to_have_text(who)


def test_without_a_key_the_data_is_refused(page: Any, url: str, tmp_path: Path) -> None:
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
    # the page's own fetch, without a key; the stream with a wrong key in its URL
    assert page.evaluate("fetch('/status').then((r) => r.status)") == 401
    assert page.evaluate("fetch('/stream?key=sl_nope').then((r) => r.status)") == 401
    page.screenshot(path=str(tmp_path / "dashboard-no-key.png"))


def test_maintenance_sees_everything_but_may_command_nothing(
    page: Any, url: str, api_keys: ApiKeys, tmp_path: Path
) -> None:
    sign_in(page, url, api_keys.key["maintenance"], "maint-max (maintenance)")
    expect = playwright_api.expect
    expect(page.locator("#state")).to_have_text("EXECUTE", timeout=5000)
    for sel in ("button[data-cmd=start]", "button[data-cmd=stop]", "button[data-cmd=reset]",
                "#recipe-activate", "#lot-open button", "#lot-close"):  # fmt: skip
        expect(page.locator(sel)).to_be_disabled()
    expect(page.locator("#recipe-activate")).to_have_attribute("title", "needs a operator key")
    expect(page.locator("#preview")).to_have_attribute("data-frame", "149", timeout=10000)
    # a command forced past the disabled button is refused by the API, with the reason
    status = page.evaluate(
        """(key) => fetch('/commands/stop', {method: 'POST', headers: {Authorization: 'Bearer '
        + key, 'Content-Type': 'application/json'}, body: '{}'}).then((r) => r.status)""",
        api_keys.key["maintenance"],
    )
    assert status == 403
    expect(page.locator("#state")).to_have_text("EXECUTE")
    page.screenshot(path=str(tmp_path / "dashboard-maintenance.png"), full_page=True)


def test_live_view_numbers_charts_and_heat_map(
    page: Any, served: tuple[SortingLine, str], api_keys: ApiKeys, tmp_path: Path
) -> None:
    line, url = served
    sign_in(page, url, api_keys.key["operator"], "op-ann (operator)")
    expect = playwright_api.expect
    expect(page.locator("#line")).to_have_text("virtual-plant")
    expect(page.locator("#link")).to_contain_text("live", timeout=10000)
    frames = int(page.locator("#frames").inner_text())
    expect(page.locator("#composition .bar")).to_have_count(10)
    # the camera preview: a decoded JPEG of the newest frame, and the legend
    expect(page.locator("#preview")).to_have_attribute("data-frame", str(frames - 1))
    assert page.evaluate("document.getElementById('preview').naturalWidth") == 640
    expect(page.locator("#legend span")).to_have_count(10)
    # the numbers follow the line (the stream): ten more frames
    line.run_frames(10)
    expect(page.locator("#frames")).to_have_text(str(frames + 10), timeout=10000)
    # the belt load as the status has it (its window may not be full yet: "–")
    load = line.snapshot().belt_load
    assert load is not None

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f} %"

    expect(page.locator("#touching")).to_have_text(pct(load.merged_share), timeout=10000)
    expect(page.locator("#covered")).to_have_text(pct(load.covered_share), timeout=10000)
    expect(page.locator("#preview")).to_have_attribute("data-frame", str(frames + 9), timeout=10000)
    # the heat map: 80 valves drawn, some of them fired
    expect(page.locator("#heatmap")).to_have_attribute("data-valves", "80", timeout=10000)
    assert page.evaluate(INKED, "heatmap") > 1000
    # the throughput chart (records of this run, or live samples) and the quality chart
    page.wait_for_function("document.getElementById('chart-tput').dataset.bars > 0")
    assert page.evaluate(INKED, "chart-tput") > 100
    expect(page.locator("#chart-quality polyline")).not_to_have_count(0, timeout=10000)
    points = page.locator("#chart-quality polyline").first.get_attribute("points")
    assert points and len(points.split()) >= 1
    page.screenshot(path=str(tmp_path / "dashboard-live.png"), full_page=True)


def test_operator_commands_the_line(page: Any, url: str, api_keys: ApiKeys, tmp_path: Path) -> None:
    sign_in(page, url, api_keys.key["operator"], "op-ann (operator)")
    expect = playwright_api.expect
    expect(page.locator("#state")).to_have_text("EXECUTE", timeout=5000)
    page.click("button[data-cmd=start]")  # not allowed while executing
    expect(page.locator("#msg")).to_contain_text("cannot start while EXECUTE")
    page.click("button[data-cmd=stop]")
    expect(page.locator("#state")).to_have_text("STOPPED")
    expect(page.locator("#alarms li").first).to_contain_text("stop by op-ann")
    page.screenshot(path=str(tmp_path / "dashboard-stopped.png"), full_page=True)
    page.click("button[data-cmd=reset]")
    expect(page.locator("#state")).to_have_text("IDLE")
    page.click("button[data-cmd=start]")
    expect(page.locator("#state")).to_have_text("EXECUTE")
    expect(page.locator("#msg")).to_have_text("")
    page.reload()  # the key stays for this tab (sessionStorage)
    expect(page.locator("#who")).to_have_text("op-ann (operator)")
    assert page.evaluate("sessionStorage.getItem('sortline.key')") == api_keys.key["operator"]


def test_operator_chooses_a_recipe(
    page: Any, served: tuple[SortingLine, str], api_keys: ApiKeys, as_role: Any
) -> None:
    line, url = served
    base = url.rstrip("/")
    r = as_role("engineer").post(f"{base}/recipes", json={"toml": COPPER_ONLY})
    assert r.status_code == 200, r.text
    sign_in(page, url, api_keys.key["operator"], "op-ann (operator)")
    expect = playwright_api.expect
    expect(page.locator("#recipe-select option")).to_have_count(2)
    try:
        page.select_option("#recipe-select", "copper-only|1")
        page.click("#recipe-activate")
        expect(page.locator("#recipe-msg")).to_have_text("now copper-only v1")
        expect(page.locator("#recipe")).to_have_text("copper-only", timeout=5000)
        assert line.parts.recipe.name == "copper-only"
        hist = as_role("maintenance").get(f"{base}/recipes/history").json()
        assert (hist[-1]["who"], hist[-1]["name"]) == ("op-ann", "copper-only")
    finally:
        as_role("operator").post(f"{base}/recipes/default/activate")


def test_alarm_is_acknowledged_from_the_page(
    page: Any, served: tuple[SortingLine, str], api_keys: ApiKeys, tmp_path: Path
) -> None:
    line, url = served
    plant = line.parts.plant
    assert plant is not None
    sign_in(page, url, api_keys.key["operator"], "op-ann (operator)")
    expect = playwright_api.expect
    plant.plc.set_estop(True)
    try:
        button = page.locator("#alarm-list button[data-ack=estop]")
        expect(button).to_be_enabled(timeout=15000)
        page.screenshot(path=str(tmp_path / "dashboard-alarm.png"), full_page=True)
        button.click()
        expect(
            page.locator("#alarm-list li", has_text="acknowledged by op-ann").first
        ).to_be_visible(timeout=10000)
    finally:
        plant.plc.set_estop(False)
    op = api_keys.client("operator")
    base = url.rstrip("/")
    assert httpx.get(f"{base}/alarms", headers=api_keys.headers("operator")).is_success
    line.run_frames(2)
    for cmd in ("reset", "start"):
        op.post(f"{base}/commands/{cmd}", json={})
    line.run_frames(2)
    assert line.state.state.name == "EXECUTE"


def test_lot_open_close_and_export(page: Any, url: str, api_keys: ApiKeys, tmp_path: Path) -> None:
    sign_in(page, url, api_keys.key["operator"], "op-ann (operator)")
    expect = playwright_api.expect
    expect(page.locator("#lot")).to_contain_text("no lot open", timeout=10000)
    expect(page.locator("#lot-close")).to_be_disabled()
    page.fill("#lot-name", "L-42")
    page.fill("#lot-source", "Müller scrap, truck 7")
    page.click("#lot-open button")
    expect(page.locator("#lot")).to_contain_text("L-42 from Müller scrap, truck 7", timeout=10000)
    expect(page.locator("#lot-close")).to_be_enabled()
    with page.expect_download() as got:
        page.click("button[data-export=csv][data-span='3600']")
    csv_path = tmp_path / "last-hour.csv"
    got.value.save_as(csv_path)
    assert csv_path.read_text().count("\n") >= 1  # a header line at least
    page.screenshot(path=str(tmp_path / "dashboard-lot.png"), full_page=True)
    page.click("#lot-close")
    expect(page.locator("#lot-msg")).to_have_text("lot L-42 closed")
    expect(page.locator("#lot")).to_contain_text("no lot open", timeout=10000)
    expect(page.locator("#lots li").first).to_contain_text("L-42")
