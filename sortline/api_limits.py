"""Request limits for the status API: a pure ASGI middleware.

A query string that gives one parameter more than once is answered ``422``
in the shape of FastAPI's own validation errors, ``{"detail": [{"type":
"multiple_values", "loc": ["query", NAME], "msg": "query parameter 'NAME'
given N times; give it once (METHOD PATH)"}]}``: every query parameter of
the API is a single value, and a web framework would otherwise quietly take
the last.

A request whose ``Content-Length`` exceeds ``max_bytes``, or whose streamed
(chunked) body grows past it, is answered ``413`` with
``{"detail": "request body over N bytes (METHOD PATH)"}`` before any route
reads it; a ``Content-Length`` that is not a number gets ``400``. The limit
is ``[api] max_body_bytes`` (every route of the API takes small JSON).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyLimit", "body_limit_of"]

DEFAULT_MAX_BODY_BYTES = 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLargeError(Exception):
    pass


def body_limit_of(line: object) -> int:
    """``[api] max_body_bytes`` of the line's config (the default without one)."""
    cfg = getattr(line, "cfg", None)
    api = getattr(cfg, "api", None)
    value = getattr(api, "max_body_bytes", None)
    return int(value) if isinstance(value, int) else DEFAULT_MAX_BODY_BYTES


async def _reply(send: Send, status: int, detail: str | list[dict[str, Any]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _repeated_parameter(query: bytes) -> tuple[str, int] | None:
    """The first query parameter given more than once, and how often."""
    if not query:
        return None
    names = Counter(n for n, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    for name, n in names.items():
        if n > 1:
            return name[:60], n
    return None


class BodyLimit:
    """``app`` with request bodies limited to ``max_bytes`` and each query
    parameter given at most once."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes {max_bytes} must be >= 1")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = f"{scope.get('method', '?')} {scope.get('path', '?')}"
        repeated = _repeated_parameter(scope.get("query_string", b""))
        if repeated is not None:
            name, n = repeated
            msg = f"query parameter {name!r} given {n} times; give it once ({where})"
            # the shape of FastAPI's own 422 (HTTPValidationError), as the schema declares
            error = {"type": "multiple_values", "loc": ["query", name], "msg": msg}
            await _reply(send, 422, [error])
            return
        too_large = f"request body over {self.max_bytes} bytes ({where})"
        for name, value in scope.get("headers", ()):
            if name.lower() == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _reply(send, 400, f"Content-Length {value[:40]!r} is not a number")
                    return
                if length > self.max_bytes:
                    await _reply(send, 413, too_large)
                    return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLargeError
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLargeError:
            if not started:
                await _reply(send, 413, too_large)
