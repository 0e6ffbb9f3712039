"""A small JSON endpoint: stdlib HTTP in a thread, for rigs and panels.

The virtual plant's panel (score, E-stop) and the virtual PLC's fault
injection are tools for tests and people at a bench, not the line's API:
they need no framework, only routes that take a JSON body and answer JSON.

``JsonEndpoint(get={"/health": fn}, post={"/estop": fn})``: a GET route
calls ``fn()``; a POST route calls ``fn(body)`` with the decoded JSON body
(``None`` when the body is empty). Both return a dict, sent as JSON with 200.
A handler that raises ``ValueError`` gets 400 ``{"error": "<its message>"}``;
an unknown path gets 404; a body that is not JSON, or longer than
``max_body`` bytes, gets 400 before any handler runs. No access log.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["GetFn", "JsonEndpoint", "PostFn"]

GetFn = Callable[[], dict[str, Any]]
PostFn = Callable[[Any], dict[str, Any]]


class JsonEndpoint:
    """``get`` and ``post`` routes served on ``host:port`` (0: a free port)."""

    def __init__(
        self,
        get: Mapping[str, GetFn],
        post: Mapping[str, PostFn],
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int = 1 << 20,
        name: str = "json-http",
    ) -> None:
        self._get, self._post = dict(get), dict(post)
        self._host, self._max_body, self._name = host, max_body, name
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
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
            daemon=True, name=self._name,
        )  # fmt: skip
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5.0)
            self._thread = None
        self._httpd.server_close()

    def _body(self, length_header: str | None, read: Callable[[int], bytes]) -> Any:
        """The decoded body; ValueError naming what is wrong with it."""
        try:
            length = int(length_header or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= self._max_body:
            raise ValueError(f"body length {length_header} outside 0..{self._max_body} bytes")
        raw = read(length)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"body is not JSON: {exc}") from None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fn = server._get.get(self.path.split("?")[0])
                if fn is None:
                    self._reply(404, {"error": f"no such resource {self.path}"})
                    return
                self._call(fn)

            def do_POST(self) -> None:
                fn = server._post.get(self.path.split("?")[0])
                if fn is None:
                    self._reply(404, {"error": f"no such resource {self.path}"})
                    return
                try:
                    body = server._body(self.headers.get("Content-Length"), self.rfile.read)
                except ValueError as exc:
                    self._reply(400, {"error": str(exc)})
                    return
                self._call(lambda: fn(body))

            def _call(self, fn: Callable[[], dict[str, Any]]) -> None:
                try:
                    out = fn()
                except ValueError as exc:
                    self._reply(400, {"error": str(exc)})
                else:
                    self._reply(200, out)

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
