"""``/recipes`` over HTTP against a running (stepped) line: list, show,
upload, validate, activate (the line sorts by it), history, roles, refusals
with one line, and the library on disk surviving a restart."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from sortline.auth import Role
from sortline.config import load_config
from sortline.recipe_library import RecipeLibrary
from sortline.runtime import SortingLine

from .conftest import ApiKeys, served_line

Served = tuple[SortingLine, str, Path]
AsRole = Callable[[Role | None], httpx.Client]

COPPER_ONLY = """name = "copper-only"
version = 1
description = "copper to the air-jet bin"
[fractions]
eject = 0
[classes.copper]
fraction = "eject"
threshold = 0.5
priority = 10
"""
COPPER_ONLY_V2 = COPPER_ONLY.replace("version = 1", "version = 2").replace(
    "threshold = 0.5", "threshold = 0.7"
)


@pytest.fixture(scope="module")
def served(
    api_keys: ApiKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SortingLine, str, Path]]:
    tmp = tmp_path_factory.mktemp("recipes")
    cfg_path = tmp / "line.toml"
    cfg_path.write_text('[recipes]\ndir = "lib"\n')
    audit = tmp / "audit.jsonl"
    with served_line(api_keys, 20, cfg=load_config(cfg_path), audit=audit, records=False) as (
        line,
        url,
    ):
        yield line, url, audit


def test_list_shows_the_shipped_recipe_active(served: Served, as_role: AsRole) -> None:
    _, url, _ = served
    r = as_role("maintenance").get(f"{url}/recipes")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["active"] == "default v1"
    shipped = [e for e in body["recipes"] if e["origin"] == "shipped"]
    assert [(e["name"], e["version"], e["active"]) for e in shipped] == [("default", 1, True)]
    assert len(shipped[0]["sha256"]) == 64


def test_show_gives_toml_and_parsed_view(served: Served, as_role: AsRole) -> None:
    _, url, _ = served
    r = as_role("maintenance").get(f"{url}/recipes/default")
    assert r.status_code == 200, r.text
    body = r.json()
    assert 'name = "default"' in body["toml"]
    assert body["parsed"]["targets"] == {"copper": "eject", "brass": "eject", "battery": "eject"}
    assert body["parsed"]["thresholds"]["battery"] == 0.3
    assert body["parsed"]["file"]["fractions"] == {"eject": 0}
    # copper and brass each pool the eject fraction's classes as lax as themselves
    # (the battery's 0.3 adds to theirs; the battery acts on its own probability)
    pool = ["copper", "brass", "battery"]
    assert body["parsed"]["pools"] == {"copper": pool, "brass": pool}
    assert body["parsed"]["file"]["pool_classes"] is True
    r = as_role("maintenance").get(f"{url}/recipes/nope")
    assert r.status_code == 404 and r.json()["detail"] == "no recipe named 'nope'"
    r = as_role("maintenance").get(f"{url}/recipes/default", params={"version": 7})
    assert r.status_code == 404
    assert r.json()["detail"] == "recipe 'default' has no version 7 (have: 1)"


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("name = 3\n", "name"),
        (COPPER_ONLY.replace("copper]", "unobtainium]"), "unobtainium"),
        (COPPER_ONLY.replace('fraction = "eject"', 'fraction = "bin9"'), "bin9"),
        ("name = [", "TOML"),
        (COPPER_ONLY.replace('"copper-only"', '"history"'), "reserved"),
    ],
)
def test_bad_recipes_are_refused_with_one_line(
    served: Served, as_role: AsRole, toml: str, says: str
) -> None:
    _, url, _ = served
    for path in ("/recipes/validate", "/recipes"):
        r = as_role("engineer").post(f"{url}{path}", json={"toml": toml})
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail
        assert says.lower() in detail.lower(), detail
    names = {e["name"] for e in as_role("maintenance").get(f"{url}/recipes").json()["recipes"]}
    assert names <= {"default", "copper-only"}


def test_validate_stores_nothing(served: Served, as_role: AsRole) -> None:
    line, url, _ = served
    text = COPPER_ONLY.replace("copper-only", "just-checking")
    r = as_role("engineer").post(f"{url}/recipes/validate", json={"toml": text})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["valid"], body["name"], body["stored"]) == (True, "just-checking", False)
    assert body["parsed"]["targets"] == {"copper": "eject"}
    assert body["parsed"]["pools"] == {}  # one class in its fraction: nothing to pool
    red = text + '[classes.brass]\nfraction = "eject"\nthreshold = 0.5\npriority = 10\n'
    r = as_role("engineer").post(f"{url}/recipes/validate", json={"toml": red})
    both = ["copper", "brass"]
    assert r.status_code == 200 and r.json()["parsed"]["pools"] == {"copper": both, "brass": both}
    per_class = red.replace("version = 1", "version = 1\npool_classes = false")
    r = as_role("engineer").post(f"{url}/recipes/validate", json={"toml": per_class})
    assert r.status_code == 200 and r.json()["parsed"]["pools"] == {}, r.text
    assert as_role("maintenance").get(f"{url}/recipes/just-checking").status_code == 404
    assert not (line.recipe_library.folder / "just-checking").exists()


def test_upload_activate_history_and_roles(served: Served, as_role: AsRole) -> None:
    line, url, audit = served
    # maintenance may not upload, operator neither
    for role in ("maintenance", "operator"):
        r = as_role(role).post(f"{url}/recipes", json={"toml": COPPER_ONLY})
        assert r.status_code == 403
    r = as_role("engineer").post(f"{url}/recipes", json={"toml": COPPER_ONLY, "note": "trial"})
    assert r.status_code == 200, r.text
    assert (r.json()["new"], r.json()["uploaded_by"], r.json()["active"]) == (
        True,
        "eng-eve",
        False,
    )
    again = as_role("engineer").post(f"{url}/recipes", json={"toml": COPPER_ONLY})
    assert again.status_code == 200 and again.json()["new"] is False
    clash = COPPER_ONLY.replace("threshold = 0.5", "threshold = 0.9")
    r = as_role("engineer").post(f"{url}/recipes", json={"toml": clash})
    assert r.status_code == 409 and "raise version" in r.json()["detail"]
    assert as_role("engineer").post(f"{url}/recipes", json={"toml": COPPER_ONLY_V2}).is_success
    # on disk, atomically written: one file per version
    files = sorted(p.name for p in (line.recipe_library.folder / "copper-only").iterdir())
    assert files == ["v000001.json", "v000002.json"]

    # maintenance may not choose a recipe; an operator may
    r = as_role("maintenance").post(f"{url}/recipes/copper-only/activate", json={})
    assert r.status_code == 403
    assert line.parts.recipe.name == "default"
    r = as_role("operator").post(
        f"{url}/recipes/copper-only/activate", json={"version": 1, "note": "lot 7"}
    )
    assert r.status_code == 200, r.text
    act = r.json()["activation"]
    assert (act["who"], act["name"], act["version"], act["previous"]) == (
        "op-ann",
        "copper-only",
        1,
        "default v1",
    )
    # the running line sorts by it now
    assert line.parts.recipe.name == "copper-only" and line.parts.recipe.version == 1
    assert as_role("maintenance").get(f"{url}/recipe").json()["targets"] == {"copper": "eject"}
    line.run_frames(3)  # the controller takes it at its next update
    assert line.parts.controller.recipe.name == "copper-only"
    assert as_role("maintenance").get(f"{url}/status").json()["recipe"] == "copper-only"
    listed = as_role("maintenance").get(f"{url}/recipes").json()
    assert listed["active"] == "copper-only v1"
    assert [e["version"] for e in listed["recipes"] if e["active"]] == [1]

    # no version: the highest
    r = as_role("operator").post(f"{url}/recipes/copper-only/activate")
    assert r.status_code == 200 and r.json()["recipe"]["version"] == 2
    assert float(line.parts.recipe.threshold[line.parts.class_names.index("copper")]) == 0.7
    r = as_role("operator").post(f"{url}/recipes/copper-only/activate", json={"version": 9})
    assert r.status_code == 404

    # PUT /recipe still works and shows in the history too
    r = as_role("engineer").put(f"{url}/recipe", json={"toml": COPPER_ONLY})
    assert r.status_code == 200
    hist = as_role("maintenance").get(f"{url}/recipes/history").json()
    tail = [(h["who"], h["name"], h["version"], h["via"]) for h in hist[-4:]]
    assert tail == [
        ("config", "default", 1, "start-up"),
        ("op-ann", "copper-only", 1, "POST /recipes/{name}/activate"),
        ("op-ann", "copper-only", 2, "POST /recipes/{name}/activate"),
        ("eng-eve", "copper-only", 1, "PUT /recipe"),
    ]
    assert hist[-3]["note"] == "lot 7"
    # and it is on disk, one JSON line each
    lines = line.recipe_library.history_path.read_text().splitlines()
    assert [json.loads(x)["via"] for x in lines[-4:]] == [t[3] for t in tail]
    # the audit log has the changes and the refusals
    entries = [json.loads(x) for x in audit.read_text().splitlines()]
    acts = [(e["who"], e["status"], e["action"]) for e in entries if "/recipes" in e["action"]]
    assert ("eng-eve", 409, "POST /recipes") in acts
    assert ("op-ann", 200, "POST /recipes/copper-only/activate") in acts
    assert (None, 403, "POST /recipes/copper-only/activate") not in acts
    assert ("maint-max", 403, "POST /recipes/copper-only/activate") in acts


def test_without_a_key_every_recipe_route_is_refused(served: Served) -> None:
    _, url, _ = served
    for method, path in [
        ("GET", "/recipes"),
        ("GET", "/recipes/history"),
        ("GET", "/recipes/default"),
        ("POST", "/recipes"),
        ("POST", "/recipes/validate"),
        ("POST", "/recipes/default/activate"),
    ]:
        assert httpx.request(method, url + path, json={"toml": "x"}).status_code == 401


def test_library_and_history_survive_a_restart(served: Served) -> None:
    line, _, _ = served
    again = RecipeLibrary(
        line.recipe_library.folder.parent, "virtual-plant", line.parts.class_names
    )
    assert [e.version for e in again.uploaded() if e.name == "copper-only"] == [1, 2]
    assert again.history(1000)[-1].via == "PUT /recipe"
    # a torn last line (a crash mid-write) is skipped, the rest is read
    with again.history_path.open("a") as f:
        f.write('{"t_unix_s": 1.0, "who"')
    third = RecipeLibrary(
        line.recipe_library.folder.parent, "virtual-plant", line.parts.class_names
    )
    assert third.history(1000)[-1].via == "PUT /recipe"


def test_a_library_that_cannot_be_written_is_named(served: Served, as_role: AsRole) -> None:
    line, url, _ = served
    (line.recipe_library.folder / "blocked").write_text("a file where the folder goes")
    text = COPPER_ONLY.replace("copper-only", "blocked")
    r = as_role("engineer").post(f"{url}/recipes", json={"toml": text})
    assert r.status_code == 503, r.text
    assert r.json()["detail"].startswith(f"recipe library {line.recipe_library.folder}")
    assert as_role("maintenance").get(f"{url}/recipes/blocked").status_code == 404
