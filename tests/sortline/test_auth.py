"""API keys, roles and the audit log over real HTTP on loopback, against a
real (stepped) line: every route against no key, a wrong key and each role;
the route table itself (a route without a declared role fails here); the
constant-time compare and the verified-key cache; audit entries; ``sortline
keys new`` round-tripping through a config; the start-up refusal of an open
API on a plant network."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

import sortline.auth as auth
from core.errors import InputFileError
from sortline.auth import KeyBook, Principal, Role, RoleGuard
from sortline.commands.run import _key_book
from sortline.config import load_config
from sortline.runtime import SortingLine

from .conftest import KEY_NAMES, ApiKeys, served_line, until

SORTLINE = [sys.executable, "-m", "sortline.cli"]
OPEN = {"/", "/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"}
RANK = {"maintenance": 0, "operator": 1, "engineer": 2}

# method, path, body, role needed (None: open), status when allowed (no state change)
ROUTES: list[tuple[str, str, Any, Role | None, int]] = [
    # /records on a line with records off: 503 once the role is accepted
    ("GET", "/records/minutes", None, "maintenance", 503),
    ("GET", "/records/decisions", None, "maintenance", 503),
    ("GET", "/records/lots", None, "maintenance", 503),
    ("GET", "/records/lots/current", None, "maintenance", 503),
    ("GET", "/records/lots/{lot_id}", None, "maintenance", 503),
    ("GET", "/records/lots/{lot_id}/certificate", None, "maintenance", 503),
    ("GET", "/records/shifts", None, "maintenance", 503),
    ("GET", "/records/export", None, "maintenance", 503),
    ("POST", "/records/lots", {"name": "L1", "source": "yard"}, "operator", 503),
    ("POST", "/records/lots/current/close", None, "operator", 503),
    ("GET", "/", None, None, 200),
    ("GET", "/health", None, None, 200),
    ("GET", "/metrics", None, None, 200),
    ("GET", "/status", None, "maintenance", 200),
    ("GET", "/recipe", None, "maintenance", 200),
    ("GET", "/alarms", None, "maintenance", 200),
    ("GET", "/whoami", None, "maintenance", 200),
    ("GET", "/valves", None, "maintenance", 200),
    ("POST", "/commands/{command}", {}, "operator", 409),  # start while executing
    ("POST", "/alarms/{key}/ack", {}, "operator", 404),  # no such alarm
    ("PUT", "/recipe", {"toml": "name = 3\n"}, "engineer", 422),  # malformed recipe
    ("POST", "/valves/{n}/disable", {}, "engineer", 404),  # no such valve
    ("POST", "/valves/{n}/enable", {}, "engineer", 404),
    ("GET", "/audit", None, "engineer", 200),
    ("GET", "/recipes", None, "maintenance", 200),
    ("GET", "/recipes/history", None, "maintenance", 200),
    ("GET", "/recipes/{name}", None, "maintenance", 200),
    ("POST", "/recipes", {"toml": "name = 3\n"}, "engineer", 422),
    ("POST", "/recipes/validate", {"toml": "name = 3\n"}, "engineer", 422),
    ("POST", "/recipes/{name}/activate", {}, "operator", 404),  # no such recipe
    ("GET", "/model", None, "maintenance", 200),
    ("GET", "/calibration", None, "maintenance", 200),
    ("GET", "/calibration/history", None, "maintenance", 200),
    ("POST", "/calibration/{version}/activate", {}, "engineer", 409),  # no store
    ("POST", "/calibration/rollback", {}, "engineer", 409),
    ("GET", "/stream", None, "maintenance", 200),
    ("GET", "/preview.jpg", None, "maintenance", 200),
    ("GET", "/preview/legend", None, "maintenance", 200),
]
CONCRETE = {
    "/records/lots/{lot_id}": "/records/lots/1",
    "/records/lots/{lot_id}/certificate": "/records/lots/1/certificate",
    "/commands/{command}": "/commands/start",
    "/alarms/{key}/ack": "/alarms/nope/ack",
    "/valves/{n}/disable": "/valves/999/disable",
    "/valves/{n}/enable": "/valves/999/enable",
    "/recipes/{name}": "/recipes/default",
    "/recipes/{name}/activate": "/recipes/nope/activate",
    "/calibration/{version}/activate": "/calibration/1/activate",
    "/stream": "/stream?events=1",
}
WHO = [None, "wrong", "maintenance", "operator", "engineer"]


@pytest.fixture(scope="module")
def served(
    api_keys: ApiKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SortingLine, str, Path]]:
    audit = tmp_path_factory.mktemp("audit") / "virtual-plant-audit.jsonl"
    with served_line(api_keys, 20, audit=audit, records=False) as (line, url):
        yield line, url, audit


def call(url: str, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    kw: dict[str, Any] = {} if body is None else {"json": body}
    return httpx.request(method, url + CONCRETE.get(path, path), headers=headers, **kw)


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(("method", "path", "body", "need", "ok"), ROUTES)
def test_every_route_against_every_role(
    served: tuple[SortingLine, str, Path], api_keys: ApiKeys, who: str | None,
    method: str, path: str, body: Any, need: Role | None, ok: int,
) -> None:  # fmt: skip
    line, url, _ = served
    if who == "wrong":
        headers = {"Authorization": "Bearer sl_" + "x" * 43}
    else:
        headers = api_keys.headers(who)  # type: ignore[arg-type]
    r = call(url, method, path, body, headers)
    if need is None:
        expect = ok
    elif who in (None, "wrong"):
        expect = 401
    else:
        expect = ok if RANK[who] >= RANK[need] else 403
    assert r.status_code == expect, r.text
    if expect in (401, 403):
        assert set(r.json()) == {"detail"}
    if expect == 401:
        assert r.headers["www-authenticate"] == "Bearer"
    assert line.state.state.name == "EXECUTE"


def test_x_api_key_header_is_accepted(served: tuple[SortingLine, str, Path], api_keys: ApiKeys):
    _, url, _ = served
    r = httpx.get(f"{url}/whoami", headers={"X-API-Key": api_keys.key["operator"]})
    assert r.json() == {"name": KEY_NAMES["operator"], "role": "operator"}
    r = httpx.get(f"{url}/whoami", headers={"Authorization": "Basic " + api_keys.key["operator"]})
    assert r.status_code == 401


def _routes(routes: list[Any]) -> Iterator[Any]:
    """Every route, included routers' too (FastAPI >= 0.16x keeps them nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is flat
        yield from routes
        return
    yield from iter_route_contexts(routes)


def _guards(dep: Dependant) -> list[RoleGuard]:
    found = [dep.call] if isinstance(dep.call, RoleGuard) else []
    for sub in dep.dependencies:
        found += _guards(sub)
    return found  # type: ignore[return-value]


def test_every_route_declares_its_role(served: tuple[SortingLine, str, Path]) -> None:
    """A new route without ``Depends(require(role))`` fails here."""
    from sortline.api import create_app

    app = create_app(served[0], KeyBook([]), auth.AuditLog(None))
    table = {(m, p): need for m, p, _, need, _ in ROUTES}
    seen = set()
    for ctx in _routes(app.routes):
        route = getattr(ctx, "original_route", ctx)
        path = ctx.path
        if not isinstance(route, APIRoute):
            assert path in OPEN, f"{path}: not an API route and not known to be open"
            continue
        guards = _guards(getattr(ctx, "dependant", route.dependant))
        for method in route.methods:
            seen.add((method, path))
            if path in OPEN:
                assert not guards, f"{method} {path} is open by design"
                continue
            assert len(guards) == 1, f"{method} {path}: no role declared (Depends(require(...)))"
            assert (method, path) in table, f"{method} {path}: add it to ROUTES in this test"
            assert guards[0].role == table[(method, path)], f"{method} {path}"
    assert seen == set(table), set(table) ^ seen
    schema = app.openapi()
    for method, path, _, need, _ in ROUTES:
        if path in ("/", "/stream"):  # /stream: endless, left out of the schema
            continue
        responses = schema["paths"][path][method.lower()]["responses"]
        if need is not None:
            assert {"401", "403"} <= set(responses), (method, path)


def test_compare_is_constant_time_and_verified_keys_are_cached(
    api_keys: ApiKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest
    hashed: list[int] = []
    real_scrypt = auth._scrypt

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    def count(*args: Any) -> bytes:
        hashed.append(1)
        return real_scrypt(*args)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    monkeypatch.setattr(auth, "_scrypt", count)
    book, keys = KeyBook.generated(["operator", "engineer"])
    hashed.clear()
    assert book.verify(keys["engineer"]) == Principal("engineer", "engineer")
    assert len(compared) == 2 and len(hashed) == 2  # every entry, no early exit
    assert book.verify(keys["engineer"]) == Principal("engineer", "engineer")
    assert len(hashed) == 2  # cached: no slow hash the second time
    assert book.verify(keys["operator"] + "x") is None and len(hashed) == 4
    assert book.verify("") is None and book.verify("k" * 1000) is None and len(hashed) == 4


def _active(url: str, key: str, eng: httpx.Client) -> bool:
    return any(a["key"] == key for a in eng.get(f"{url}/alarms").json()["active"])


def test_audit_records_commands_acks_and_refused_keys(
    served: tuple[SortingLine, str, Path], api_keys: ApiKeys
) -> None:
    """Last in the module: it presses the E-stop (and brings the line back)."""
    line, url, audit_path = served
    op, eng = api_keys.client("operator"), api_keys.client("engineer")
    start = time.time()
    assert op.post(f"{url}/commands/stop", json={"who": "panel-3"}).json() == {"state": "STOPPED"}
    assert op.post(f"{url}/commands/reset", json={}).json() == {"state": "IDLE"}
    assert op.post(f"{url}/commands/start", json={}).json() == {"state": "EXECUTE"}
    events = [e["cause"] for e in op.get(f"{url}/status").json()["events"]]
    assert "stop by op-ann" in events  # the key is who, not the body
    plant = line.parts.plant
    assert plant is not None
    plant.plc.set_estop(True)
    assert until(lambda: _active(url, "estop", eng))
    r = op.post(f"{url}/alarms/estop/ack", json={})
    assert r.status_code == 200 and r.json()["acked_by"] == "op-ann", r.text
    plant.plc.set_estop(False)
    assert until(lambda: _active(url, "estop.reset", eng))
    line.run_frames(2)
    assert op.post(f"{url}/commands/reset", json={}).json() == {"state": "IDLE"}
    assert op.post(f"{url}/commands/start", json={}).json() == {"state": "EXECUTE"}
    assert httpx.post(f"{url}/commands/stop", headers={"X-API-Key": "stolen?"}).status_code == 401
    maint = api_keys.client("maintenance")
    assert maint.post(f"{url}/commands/stop", json={}).status_code == 403
    assert maint.get(f"{url}/audit").status_code == 403

    on_disk = [json.loads(s) for s in audit_path.read_text().splitlines()]
    served_back = eng.get(f"{url}/audit", params={"limit": 10_000}).json()
    assert served_back[-len(on_disk) :] == on_disk[-len(served_back) :]
    mine = [e for e in on_disk if e["t_unix_s"] >= start]
    got = [(e["who"], e["action"], e["status"]) for e in mine]
    assert got == [
        ("op-ann", "POST /commands/stop", 200),
        ("op-ann", "POST /commands/reset", 200),
        ("op-ann", "POST /commands/start", 200),
        ("op-ann", "POST /alarms/estop/ack", 200),
        ("op-ann", "POST /commands/reset", 200),
        ("op-ann", "POST /commands/start", 200),
        (None, "POST /commands/stop", 401),
        ("maint-max", "POST /commands/stop", 403),
        ("maint-max", "GET /audit", 403),
    ]
    assert "panel-3" in mine[0]["detail"] and mine[0]["role"] == "operator"
    assert mine[6]["detail"] == "API key refused" and mine[6]["role"] is None
    assert all(e["client"].startswith("127.0.0.1:") for e in mine)


# ---------------------------------------------------------------- config + CLI
def test_keys_new_round_trips_through_a_config(tmp_path: Path) -> None:
    done = subprocess.run(
        [*SORTLINE, "keys", "new", "--name", "alice", "--role", "operator"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    first, rest = done.stdout.split("\n", 1)
    key = first.rsplit(" ", 1)[1]
    assert key.startswith("sl_") and len(key) == 46
    entry = rest[rest.index("[[api.keys]]") :]
    cfg_path = tmp_path / "line.toml"
    cfg_path.write_text(f"[api]\nport = 0\n{entry}")
    assert key not in cfg_path.read_text()
    cfg = load_config(cfg_path)
    book = KeyBook(cfg.api.keys)
    assert book.verify(key) == Principal("alice", "operator")
    assert book.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


GOOD_HASH = "scrypt$n=16384,r=8,p=1$R9oxcZkghL2ay7LnL2kB6w==$" + "A" * 43 + "="


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        ([{"name": "a", "role": "admin", "hash": GOOD_HASH}], "api.keys[0].role"),
        ([{"name": "a", "role": "operator", "hash": "hunter2"}], "api.keys[0].hash"),
        ([{"name": "a", "role": "operator", "hash": GOOD_HASH.replace("16384", "1000")}],
         "api.keys[0].hash"),
        ([{"name": "a b", "role": "operator", "hash": GOOD_HASH}], "api.keys[0].name"),
        ([{"name": "a", "role": "operator", "hash": GOOD_HASH, "key": "x"}], "api.keys[0].key"),
        ([{"name": "a", "role": "operator", "hash": GOOD_HASH}] * 2, "used twice"),
    ],
)  # fmt: skip
def test_bad_key_entries_are_one_line_errors(
    tmp_path: Path, entries: list[dict[str, str]], field: str
) -> None:
    p = tmp_path / "line.toml"
    p.write_text("".join(
        "[[api.keys]]\n" + "".join(f'{k} = "{v}"\n' for k, v in e.items()) for e in entries
    ))  # fmt: skip
    with pytest.raises(InputFileError) as err:
        load_config(p)
    text = str(err.value)
    assert field in text and "\n" not in text, text


def test_open_api_beyond_loopback_is_refused_at_start_up(tmp_path: Path) -> None:
    p = tmp_path / "line.toml"
    p.write_text('[api]\nhost = "0.0.0.0"\nport = 0\n')
    done = subprocess.run(
        [*SORTLINE, "run", "--config", str(p), "--duration", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = [s for s in done.stderr.splitlines() if s.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "api.keys" in lines[0] and "0.0.0.0" in lines[0]


def test_loopback_without_keys_warns_and_generates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "line.toml"
    p.write_text("[api]\nport = 0\n")
    book = _key_book(load_config(p), demo=False)
    out, err = capsys.readouterr()
    assert len(book) == 2 and "warning" in err
    keys = {s.split()[1]: s.rsplit(" ", 1)[1] for s in out.splitlines()}
    assert book.verify(keys["operator"]) == Principal("operator", "operator")
    assert book.verify(keys["engineer"]) == Principal("engineer", "engineer")
    assert len(_key_book(load_config(), demo=True)) == 2
    out, err = capsys.readouterr()
    assert not err and out.count("API key for this run") == 2
