"""Status API over real HTTP on loopback, against a real (stepped) line."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sortline.api import ApiServer, create_app
from sortline.config import load_config
from sortline.runtime import SortingLine


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[SortingLine, str]]:
    line = SortingLine(load_config(), stepped=True, plc_port=0)
    line.start()
    api = ApiServer(create_app(line), "127.0.0.1", 0)
    api.start()
    try:
        line.run_frames(60)
        yield line, f"http://127.0.0.1:{api.port}"
    finally:
        api.stop()
        line.stop()


def test_health_and_status(served: tuple[SortingLine, str]) -> None:
    _, url = served
    h = httpx.get(f"{url}/health").json()
    assert h == {"status": "ok", "state": "EXECUTE", "causes": []}
    s = httpx.get(f"{url}/status").json()
    assert s["frames"] == 60 and s["state"] == "EXECUTE" and s["virtual_plant"] is True
    assert set(s["composition"]) == set(load_config().line.classes)
    assert s["plc"]["connected"] is True


def test_commands_follow_the_state_machine(served: tuple[SortingLine, str]) -> None:
    line, url = served
    r = httpx.post(f"{url}/commands/start", json={"who": "test"})
    assert r.status_code == 409 and "cannot start while EXECUTE" in r.json()["detail"]
    assert httpx.post(f"{url}/commands/stop", json={"who": "test"}).json() == {"state": "STOPPED"}
    line.run_frames(2)  # a stopped line sends nothing and stays stopped
    assert httpx.get(f"{url}/health").json()["status"] == "degraded"
    assert httpx.post(f"{url}/commands/reset", json={}).json() == {"state": "IDLE"}
    assert httpx.post(f"{url}/commands/start", json={}).json() == {"state": "EXECUTE"}
    who = [e["cause"] for e in httpx.get(f"{url}/status").json()["events"]]
    assert "stop by test" in who and "reset by operator" in who


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/commands/explode", {}, 422),
        ("/commands/stop", {"who": 5}, 422),
        ("/commands/stop", {"who": ""}, 422),
        ("/commands/stop", {"who": "x", "extra": 1}, 422),
        ("/commands/stop", [1, 2], 422),
    ],
)
def test_bad_payloads_are_refused(
    served: tuple[SortingLine, str], path: str, body: object, status: int
) -> None:
    _, url = served
    before = httpx.get(f"{url}/health").json()["state"]
    r = httpx.post(f"{url}{path}", json=body)
    assert r.status_code == status, r.text
    assert httpx.get(f"{url}/health").json()["state"] == before


def test_dashboard_page_is_served(served: tuple[SortingLine, str]) -> None:
    _, url = served
    r = httpx.get(url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/status" in r.text and "sortline" in r.text
