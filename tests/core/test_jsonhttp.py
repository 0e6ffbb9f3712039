"""The small JSON endpoint behind the plant's panel and the PLC's fault
injection, over real HTTP on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from core.jsonhttp import JsonEndpoint


def _call(url: str, body: bytes | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _double(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("n"), int):
        raise ValueError('body must be {"n": int}')
    return {"twice": 2 * data["n"]}


@pytest.fixture
def endpoint() -> Iterator[JsonEndpoint]:
    ep = JsonEndpoint({"/health": lambda: {"ok": True}}, {"/double": _double}, max_body=64)
    ep.start()
    yield ep
    ep.stop()


def test_routes_answer_json(endpoint: JsonEndpoint) -> None:
    assert _call(endpoint.url + "/health?x=1") == (200, {"ok": True})
    assert _call(endpoint.url + "/double", b'{"n": 21}') == (200, {"twice": 42})


def test_bad_requests_are_refused_with_a_reason(endpoint: JsonEndpoint) -> None:
    code, out = _call(endpoint.url + "/nothing")
    assert code == 404 and "/nothing" in out["error"]
    code, out = _call(endpoint.url + "/health", b"{}")  # GET-only route, POSTed
    assert code == 404
    code, out = _call(endpoint.url + "/double", b"{not json")
    assert code == 400 and out["error"].startswith("body is not JSON")
    code, out = _call(endpoint.url + "/double", b'{"n": "x"}')
    assert (code, out) == (400, {"error": 'body must be {"n": int}'})
    code, out = _call(endpoint.url + "/double", b'{"n": 1, "pad": "' + b"x" * 80 + b'"}')
    assert code == 400 and "outside 0..64 bytes" in out["error"]
    code, out = _call(endpoint.url + "/double", b"")  # empty body: the handler gets None
    assert code == 400 and "must be" in out["error"]
