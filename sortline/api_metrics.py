"""``GET /metrics``: the line's Prometheus metrics (``sortline.metrics_prom``).

Open without an API key (plant monitoring scrapes it) unless
``[api] open_metrics = false``, which closes it (404). The scrape reads the
published snapshot and counters; it never waits on the real-time loop.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, HTTPException, Response

from sortline.metrics_prom import CONTENT_TYPE

__all__ = ["MetricsSource", "metrics_router"]


class MetricsSource(Protocol):
    enabled: bool

    def render(self) -> bytes: ...


def metrics_router(line: object) -> APIRouter:
    """The route, reading ``line.metrics`` (``SortingLine.metrics``; a line
    without it has no metrics: 404)."""
    source: MetricsSource | None = getattr(line, "metrics", None)
    router = APIRouter()

    @router.get(  # open: no role (see the module doc; the route-table test allows it)
        "/metrics",
        response_class=Response,
        summary="Prometheus metrics",
        responses={
            200: {
                "description": "Prometheus text exposition format, version 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            404: {"description": "metrics are closed ([api] open_metrics = false)"},
        },
    )
    def metrics() -> Response:
        if source is None or not source.enabled:
            raise HTTPException(status_code=404, detail="metrics are closed on this line")
        return Response(source.render(), media_type=CONTENT_TYPE)

    return router
