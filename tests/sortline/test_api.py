"""Status API over real HTTP on loopback, against a real (stepped) line."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sortline.config import load_config
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line


@pytest.fixture(scope="module")
def served(api_keys: ApiKeys) -> Iterator[tuple[SortingLine, str]]:
    with served_line(api_keys, 60) as served:
        yield served


def test_health_and_status(served: tuple[SortingLine, str], http: httpx.Client) -> None:
    _, url = served
    h = http.get(f"{url}/health").json()
    assert h == {"status": "ok", "state": "EXECUTE", "causes": []}
    s = http.get(f"{url}/status").json()
    assert s["frames"] == 60 and s["state"] == "EXECUTE" and s["virtual_plant"] is True
    assert set(s["composition"]) == set(load_config().line.classes)
    assert s["plc"]["connected"] is True


def test_commands_follow_the_state_machine(
    served: tuple[SortingLine, str], api_keys: ApiKeys
) -> None:
    line, url = served
    http = api_keys.client("operator")
    r = http.post(f"{url}/commands/start", json={"who": "test"})
    assert r.status_code == 409 and "cannot start while EXECUTE" in r.json()["detail"]
    assert http.post(f"{url}/commands/stop", json={"who": "test"}).json() == {"state": "STOPPED"}
    line.run_frames(2)  # a stopped line sends nothing and stays stopped
    assert http.get(f"{url}/health").json()["status"] == "degraded"
    assert http.post(f"{url}/commands/reset", json={}).json() == {"state": "IDLE"}
    assert http.post(f"{url}/commands/start", json={}).json() == {"state": "EXECUTE"}
    who = [e["cause"] for e in http.get(f"{url}/status").json()["events"]]
    assert "stop by op-ann" in who and "reset by op-ann" in who  # the key, not the body


@pytest.fixture
def http(api_keys: ApiKeys) -> httpx.Client:
    """An engineer's key: every route (roles: test_auth.py)."""
    return api_keys.client("engineer")


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
    served: tuple[SortingLine, str], http: httpx.Client, path: str, body: object, status: int
) -> None:
    _, url = served
    before = http.get(f"{url}/health").json()["state"]
    r = http.post(f"{url}{path}", json=body)
    assert r.status_code == status, r.text
    assert http.get(f"{url}/health").json()["state"] == before


def test_dashboard_page_is_served(served: tuple[SortingLine, str]) -> None:
    _, url = served
    r = httpx.get(url + "/")  # the page itself needs no key; its data does
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "/status" in r.text and "sortline" in r.text


COPPER_ONLY = """
name = "copper-only"
version = 3
pass_fraction = "pass"
[fractions]
eject = 0
[classes.copper]
fraction = "eject"
threshold = 0.5
priority = 10
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"toml": "name = 3\n"}, "name"),
        ({"toml": COPPER_ONLY + "[classes.unobtainium]\nfraction = 'eject'\n"}, "unobtainium"),
        ({"toml": "[classes\n"}, "not valid TOML"),
        ({"toml": COPPER_ONLY.replace("threshold = 0.5", "threshold = 1.5")}, "threshold"),
    ],
)
def test_bad_recipe_is_refused_and_the_line_keeps_its_own(
    served: tuple[SortingLine, str], http: httpx.Client, body: dict, message: str
) -> None:
    _, url = served
    before = http.get(f"{url}/recipe").json()
    r = http.put(f"{url}/recipe", json={**body, "who": "test"})
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert http.get(f"{url}/recipe").json() == before


def test_recipe_switch_while_running_changes_what_is_sorted(
    served: tuple[SortingLine, str], http: httpx.Client
) -> None:
    line, url = served
    assert http.get(f"{url}/recipe").json()["targets"] == {
        "copper": "eject",
        "brass": "eject",
        "battery": "eject",
    }
    r = http.put(f"{url}/recipe", json={"toml": COPPER_ONLY, "who": "eng"})
    assert r.status_code == 200, r.text
    info = r.json()
    assert (info["name"], info["version"], info["switched_by"]) == ("copper-only", 3, "eng-eve")
    assert info["targets"] == {"copper": "eject"}
    assert http.get(f"{url}/status").json()["recipe"] == "copper-only"
    targeted = line.parts.controller_stats()["objects_targeted"]
    line.run_frames(150)
    assert line.parts.controller_stats()["objects_targeted"] > targeted
    # the production records show what was decided after the switch, under which
    # recipe: only copper ejected, every decision stamped with the new recipe
    assert line.records is not None
    assert line.records.writer.flush(10.0)
    after = line.records.reader.decisions(since_unix_s=info["switched_unix_s"], limit=None)
    ejected = [d for d in after if d["ejected"]]
    assert ejected, "no ejection recorded after the switch"
    assert {d["cls"] for d in ejected} == {"copper"}
    assert {d["fraction"] for d in ejected} == {"eject"}
    assert {(d["recipe"], d["recipe_version"]) for d in after} == {("copper-only", 3)}
