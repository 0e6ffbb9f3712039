"""Fault injection into ``sortline sim plc``: stdlib HTTP on loopback, in a thread.

What a test rig does to a real line's encoder and drive, by request:

- ``POST /encoder`` ``{"freeze": true|false}``: the count stops (or counts on
  from where it stopped) while the belt and its speed input keep running;
- ``POST /encoder`` ``{"jump_ticks": N}``: the count moves by N ticks at once
  (N > 0 forward, N < 0 back), |N| < 2**31;
- ``POST /belt`` ``{"speed_m_s": S}``: the drive's speed, 0 <= S <= 65 (0 stops it);
- ``GET /health``: the encoder count, speed, frozen flag and PLC state.

Every reply is JSON; a bad request gets 400 with ``{"error": "..."}`` naming
the field. Served only when ``sortline sim plc --inject-port`` asks for it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sim.vplc.server import BeltDriver

__all__ = ["InjectServer", "apply"]

_MAX_BODY = 4096
_MAX_SPEED_M_S = 65.0


def _body(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


def apply(belt: BeltDriver, path: str, data: dict[str, Any]) -> None:
    """Apply one request to ``belt``; ValueError with a one-line reason."""
    if path == "/encoder":
        if set(data) - {"freeze", "jump_ticks"} or not data:
            raise ValueError('/encoder takes {"freeze": bool} or {"jump_ticks": int}')
        if "freeze" in data:
            if not isinstance(data["freeze"], bool):
                raise ValueError('"freeze" must be true or false')
            belt.freeze(data["freeze"])
        if "jump_ticks" in data:
            n = data["jump_ticks"]
            if isinstance(n, bool) or not isinstance(n, int) or not abs(n) < 1 << 31:
                raise ValueError('"jump_ticks" must be an integer with |N| < 2**31')
            belt.jump(n)
        return
    if path == "/belt":
        s = data.get("speed_m_s")
        if set(data) != {"speed_m_s"} or isinstance(s, bool) or not isinstance(s, int | float):
            raise ValueError('/belt takes {"speed_m_s": number}')
        if not 0.0 <= s <= _MAX_SPEED_M_S:
            raise ValueError(f'"speed_m_s" {s} outside 0..{_MAX_SPEED_M_S:g}')
        belt.set_speed(float(s) * 1000.0)
        return
    raise KeyError(path)


class InjectServer:
    """``apply`` and ``health()`` served on ``host:port`` (0: a free port)."""

    def __init__(
        self,
        belt: BeltDriver,
        health: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._belt, self._health, self._host = belt, health, host
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._httpd.server_address[1]}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            daemon=True, name="vplc-inject",
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()

    def _state(self) -> dict[str, Any]:
        out = dict(self._health())
        out.update(speed_m_s=self._belt.speed_mm_s / 1000.0, frozen=self._belt.frozen)
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/health":
                    self._reply(200, server._state())
                else:
                    self._reply(404, {"error": f"no such resource {self.path}"})

            def do_POST(self) -> None:
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= _MAX_BODY:
                    self._reply(400, {"error": f"body length outside 0..{_MAX_BODY} bytes"})
                    return
                try:
                    apply(server._belt, self.path.split("?")[0], _body(self.rfile.read(length)))
                except KeyError:
                    self._reply(404, {"error": f"no such resource {self.path}"})
                except ValueError as exc:
                    self._reply(400, {"error": str(exc)})
                else:
                    self._reply(200, server._state())

            def _reply(self, status: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
