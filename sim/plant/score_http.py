"""The virtual plant's endpoint: stdlib HTTP on loopback, in a thread.

``POST /score`` with ``{"targets": {"copper": "eject", ...}}`` (class ->
fraction; omitted: the plant's default recipe) answers the plant's score
(``Score.to_dict()``); ``GET /health`` answers ``PlantRunner.health()``.
``POST /estop`` with ``{"pressed": true|false}`` opens or closes the virtual
PLC's hardwired E-stop circuit (what a person at the line does), then answers
the health. Errors are JSON ``{"error": "..."}`` with 400 or 404.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ScoreServer"]

_MAX_BODY = 1 << 20

ScoreFn = Callable[[Mapping[str, str] | None], dict[str, Any]]
HealthFn = Callable[[], dict[str, Any]]
EstopFn = Callable[[bool], None]


def _targets(body: bytes) -> Mapping[str, str] | None:
    """The ``targets`` of a request body; ValueError with a one-line reason."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError('body must be a JSON object {"targets": {...}}')
    targets = data.get("targets")
    if targets is None:
        return None
    if not isinstance(targets, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in targets.items()
    ):
        raise ValueError('"targets" must map class names to fraction names (strings)')
    return targets


def _pressed(body: bytes) -> bool:
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pressed"), bool):
        raise ValueError('body must be {"pressed": true} or {"pressed": false}')
    return bool(data["pressed"])


class ScoreServer:
    """``score(targets)``, ``health()`` and ``estop(pressed)`` served on
    ``host:port`` (0: a free port); ``score`` None: no ``/score`` (a PLC alone)."""

    def __init__(
        self,
        score: ScoreFn | None,
        health: HealthFn,
        host: str = "127.0.0.1",
        port: int = 0,
        estop: EstopFn | None = None,
    ) -> None:
        self._score, self._health, self._host, self._estop = score, health, host, estop
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True,
            name="plant-score-http",
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/health":
                    self._reply(200, server._health())
                else:
                    self._reply(404, {"error": f"no such resource {self.path}"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                score, estop = server._score, server._estop
                if not ((path == "/score" and score) or (path == "/estop" and estop)):
                    self._reply(404, {"error": f"no such resource {self.path}"})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 <= length <= _MAX_BODY:
                    self._reply(400, {"error": f"bad body length {self.headers['Content-Length']}"})
                    return
                body = self.rfile.read(length)
                try:
                    if path == "/score" and score is not None:
                        self._reply(200, score(_targets(body)))
                    elif estop is not None:
                        estop(_pressed(body))
                        self._reply(200, server._health())
                except ValueError as exc:
                    self._reply(400, {"error": str(exc)})

            def _reply(self, status: int, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # no access log on stderr

        return Handler
