"""The live view: ``GET /stream`` (Server-Sent Events of the status snapshot)
and ``GET /preview.jpg`` (the camera preview, ``sortline.preview``).

**Keys in the URL.** A browser's ``EventSource`` and ``<img>`` cannot send an
``Authorization`` header, so these routes (``/stream``, ``/preview.jpg``,
``/preview/legend``), and only these, also take the key as ``?key=`` (the
header wins when both are given; the parameter is left out of the OpenAPI
schema). The audit log records the path without the query, but a key in a
URL may land in a proxy's access log: the dashboard puts it there for
``/stream`` only and fetches the preview with the header.

**Schema.** ``/stream`` is left out of the OpenAPI schema: OpenAPI 3.0 has
no way to describe an event stream's events, and a schema-driven fuzzer
reads each endless response until its own timeout. Its events are
``event: status`` with ``GET /status``'s JSON as ``data``; it declares its
role like every route (``tests/sortline/test_auth.py`` walks them).

**Rate.** ``/stream`` sends one ``status`` event per ``1 / rate_hz`` seconds
(default 4 Hz, at most 10), the snapshot serialised once per period for all
clients, ``retry: 2000`` so a dropped browser reconnects; at most
``MAX_STREAMS`` streams at once (503 beyond). ``/preview.jpg`` encodes at
most ``PreviewEncoder.max_fps`` images a second per server, whatever the
number of viewers, drawn in the API's own process when it has one
(``sortline.api_proc``, as ``sortline run`` serves it) or in a child
process (``sortline.preview_proc``) when the API runs in the controller's;
the frame loop pays one reference store per frame, and the controller's
process one scaled copy of the newest frame per image (``PreviewTap.take``).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from sortline.auth import AUTH_RESPONSES, Principal, RoleGuard, _api_key, _bearer
from sortline.preview import legend
from sortline.preview_proc import PreviewEncoder, PreviewUnavailableError

__all__ = ["MAX_STREAMS", "UrlKeyGuard", "stream_router"]

MAX_STREAMS = 16
MAX_RATE_HZ = 10.0


class UrlKeyGuard(RoleGuard):
    """``require(role)`` that also takes the key as ``?key=`` (module doc)."""

    def __call__(
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key)],
        key: Annotated[
            str | None,
            Query(max_length=256, include_in_schema=False),
        ] = None,
    ) -> Principal:
        return super().__call__(request, bearer, header_key if header_key is not None else key)


class _SharedSnapshot:
    """The snapshot as JSON, made at most once per ``period_s`` for all streams."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._text = ""
        self._at = -1e9

    def text(self, period_s: float) -> str:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= period_s * 0.9 or not self._text:
                self._text, self._at = self._make(), now
            return self._text


class Legend(BaseModel):
    colours: dict[str, str]


_PREVIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    200: {"content": {"image/jpeg": {}}, "description": "the newest annotated frame"},
    503: {"description": "no frame yet, or the preview renderer is restarting"},
}
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    200: {
        "content": {
            "text/event-stream": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "event": {"const": "status"},
                        "id": {"type": "string"},
                        "data": {"type": "string", "description": "GET /status's JSON"},
                    },
                    "required": ["event", "id", "data"],
                }
            }
        },
        "description": "`event: status` with the status snapshot (as GET /status) as data",
    },
    503: {"description": f"{MAX_STREAMS} streams already open"},
}


def stream_router(
    line: Any, on_close: list[Callable[[], None]] | None = None, preview_inline: bool = False
) -> APIRouter:
    """Routes over a line with ``snapshot()``; the preview needs a
    ``SortingLine`` (its ``preview`` tap and ``preview_geometry()``).
    ``on_close`` gets what must be stopped with the server (the preview's
    child process); ``preview_inline`` draws in this process instead (an API
    process of its own, ``sortline.api_proc``)."""
    router = APIRouter(tags=["live"])
    shared = _SharedSnapshot(lambda: line.snapshot().model_dump_json())
    open_streams: weakref.WeakSet[AsyncIterator[str]] = weakref.WeakSet()  # gone with them
    tap = getattr(line, "preview", None)
    encoder = (
        None if tap is None else PreviewEncoder(tap, line.preview_geometry, inline=preview_inline)
    )
    if encoder is not None and on_close is not None:
        on_close.append(encoder.close)

    async def events(request: Request, period_s: float, limit: int | None) -> AsyncIterator[str]:
        n = 0
        yield f"retry: 2000\n: sortline status every {period_s:g} s\n\n"
        while (limit is None or n < limit) and not await request.is_disconnected():
            text = await asyncio.to_thread(shared.text, period_s)
            n += 1
            yield f"event: status\nid: {n}\ndata: {text}\n\n"
            if limit is not None and n >= limit:
                break
            await asyncio.sleep(period_s)

    @router.get(
        "/stream",
        response_class=StreamingResponse,
        responses=_STREAM_RESPONSES,
        dependencies=[Depends(UrlKeyGuard("maintenance"))],
        include_in_schema=False,  # endless: see the module doc
    )
    async def stream(
        request: Request,
        rate_hz: Annotated[float, Query(gt=0, le=MAX_RATE_HZ)] = 4.0,
        events_max: Annotated[
            int | None, Query(alias="events", ge=1, le=1_000_000, description="then end")
        ] = None,
    ) -> StreamingResponse:
        """The status snapshot as Server-Sent Events, ``rate_hz`` a second,
        until the client goes (or after ``events`` events: for scripts). The
        key may also come as ``?key=`` (``EventSource`` cannot send headers)."""
        if len(open_streams) >= MAX_STREAMS:
            raise HTTPException(503, detail=f"{MAX_STREAMS} streams already open; close one")
        body = events(request, 1.0 / rate_hz, events_max)
        open_streams.add(body)
        return StreamingResponse(
            body,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get(
        "/preview.jpg",
        response_class=Response,
        responses=_PREVIEW_RESPONSES,
        dependencies=[Depends(UrlKeyGuard("maintenance"))],
    )
    def preview() -> Response:
        """The newest frame with fragments outlined by class and the planned
        air-jet windows (at most 5 new images a second per server). The key
        may also come as ``?key=`` (for an ``<img>``)."""
        try:
            img = None if encoder is None else encoder.image()
        except PreviewUnavailableError as exc:
            raise HTTPException(503, detail=str(exc)) from None
        if img is None:
            raise HTTPException(503, detail="no camera frame yet")
        return Response(
            img.jpeg,
            media_type="image/jpeg",
            headers={
                "Cache-Control": "no-store",
                "X-Frame-Id": str(img.frame_id),
                "X-Encoder-Tick": str(img.tick),
                "X-Detections": str(img.detections),
                "X-Windows": str(img.windows),
            },
        )

    @router.get(
        "/preview/legend",
        response_model=Legend,
        responses=AUTH_RESPONSES,
        dependencies=[Depends(UrlKeyGuard("maintenance"))],
    )
    def preview_legend() -> Legend:
        """Class -> the CSS colour the preview outlines it in."""
        names = getattr(getattr(line, "parts", None), "class_names", ())
        return Legend(colours=dict(legend(names)))

    return router
