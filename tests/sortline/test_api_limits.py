"""The request body limit (``sortline.api_limits.BodyLimit``) over real HTTP
on loopback: by Content-Length, by a chunked body that grows past it, a bad
Content-Length, and the status API carrying it with ``[api] max_body_bytes``;
a query parameter given more than once is refused (a framework would take
the last quietly)."""

from __future__ import annotations

import logging
import socket
import types
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from sortline.api import ApiServer, create_app
from sortline.api_limits import DEFAULT_MAX_BODY_BYTES, BodyLimit, body_limit_of
from sortline.auth import AuditEntry, AuditLog, KeyBook, new_key
from sortline.config import load_config

from .conftest import ApiKeys

LIMIT = 2048


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = FastAPI()
    app.add_middleware(BodyLimit, max_bytes=LIMIT)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/since")
    async def since(t: float = 0.0) -> dict[str, float]:
        return {"t": t}

    api = ApiServer(app, "127.0.0.1", 0)
    api.start()
    yield f"http://127.0.0.1:{api.port}"
    api.stop()


@pytest.mark.parametrize(
    ("size", "status"), [(0, 200), (LIMIT, 200), (LIMIT + 1, 413), (10 * LIMIT, 413)]
)
def test_content_length_over_the_limit_is_413(url: str, size: int, status: int) -> None:
    r = httpx.post(f"{url}/echo", content=b"x" * size, timeout=10)
    assert r.status_code == status
    if status == 413:
        assert r.json()["detail"] == f"request body over {LIMIT} bytes (POST /echo)"
    else:
        assert r.json() == {"bytes": size}


def test_a_chunked_body_growing_past_the_limit_is_413(url: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 1000

    r = httpx.post(f"{url}/echo", content=chunks(), timeout=10)
    assert r.status_code == 413 and "over 2048 bytes" in r.json()["detail"]
    small = httpx.post(f"{url}/echo", content=iter([b"z" * 1000]), timeout=10)
    assert small.status_code == 200 and small.json() == {"bytes": 1000}


def test_a_content_length_that_is_not_a_number_is_400(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        head = s.recv(4096)
    assert head.split(b"\r\n")[0].split(b" ")[1] in (b"400",)


def test_the_status_api_carries_the_configured_limit(tmp_path: Path) -> None:
    cfg = load_config()
    assert cfg.api.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    line = types.SimpleNamespace(cfg=cfg.model_copy(update={"api": cfg.api.model_copy(
        update={"max_body_bytes": 4096})}))  # fmt: skip
    assert body_limit_of(line) == 4096 and body_limit_of(object()) == DEFAULT_MAX_BODY_BYTES
    app = create_app(line, KeyBook(()), AuditLog(tmp_path / "audit.jsonl"))
    limits = [m for m in app.user_middleware if m.cls is BodyLimit]
    assert len(limits) == 1 and limits[0].kwargs == {"max_bytes": 4096}
    with TestClient(app) as c:
        r = c.post("/commands/start", content=b"{}" + b" " * 5000)
    assert r.status_code == 413 and "(POST /commands/start)" in r.json()["detail"]


def test_a_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes 0"):
        BodyLimit(FastAPI(), max_bytes=0)


# ------------------------------------------------ secrets and the audit trail
def test_api_keys_never_reach_a_log_or_the_audit_file(
    tmp_path: Path, api_keys: ApiKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    audit = tmp_path / "audit.jsonl"
    line = types.SimpleNamespace(cfg=load_config())
    wrong = new_key()
    with TestClient(api_keys.app(line, audit)) as c:
        assert c.get("/audit", headers=api_keys.headers("engineer")).status_code == 200
        assert c.get("/audit", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
        assert c.get("/audit", headers={"X-API-Key": wrong}).status_code == 401
        r = c.post("/commands/start", json={}, headers=api_keys.headers("maintenance"))
        assert r.status_code == 403
    written = audit.read_text()
    assert len(written.splitlines()) >= 3  # the refusals were audited ...
    for secret in (*api_keys.key.values(), wrong):
        for where in (caplog.text, written):
            assert secret not in where and secret[:12] not in where  # ... without the keys


def test_the_audit_file_is_only_ever_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log_ = AuditLog(path)
    sizes, heads = [], []
    for i in range(5):
        log_.append(AuditEntry(t_unix_s=float(i), who="eve", role="engineer", client=None,
                               action=f"POST /x{i}", status=200))  # fmt: skip
        data = path.read_bytes()
        sizes.append(len(data))
        heads.append(data)
    assert sizes == sorted(sizes) and len(set(sizes)) == 5
    assert all(later.startswith(earlier) for earlier, later in pairwise(heads))
    app = create_app(types.SimpleNamespace(cfg=load_config()), KeyBook(()), log_)
    paths = app.openapi()["paths"]
    audit_routes = {(m.upper(), p) for p, ops in paths.items() if "audit" in p for m in ops}
    assert audit_routes == {("GET", "/audit")}  # no route rewrites or deletes entries


@pytest.mark.parametrize(
    ("query", "status", "detail"),
    [
        ("t=1.5", 200, None),
        ("t=1&t=2", 422, "query parameter 't' given 2 times; give it once (GET /since)"),
        ("t=1&x=&t=&t=3", 422, "query parameter 't' given 3 times"),
        ("t%3D=1&t=2", 200, None),  # "t=" and "t" are two names
    ],
)
def test_a_repeated_query_parameter_is_422(
    url: str, query: str, status: int, detail: str | None
) -> None:
    r = httpx.get(f"{url}/since?{query}", timeout=10)
    assert r.status_code == status, r.text
    if detail is not None:
        (error,) = r.json()["detail"]
        assert detail in error["msg"] and error["loc"] == ["query", "t"]
