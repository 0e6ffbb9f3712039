"""The virtual plant's endpoint: stdlib HTTP on loopback, in a thread.

``POST /score`` with ``{"targets": {"copper": "eject", ...}}`` (class ->
fraction; omitted: the plant's default recipe) answers the plant's score
(``Score.to_dict()``); ``GET /health`` answers ``PlantRunner.health()``.
``POST /estop`` with ``{"pressed": true|false}`` opens or closes the virtual
PLC's hardwired E-stop circuit (what a person at the line does), then answers
the health. Errors are JSON ``{"error": "..."}`` with 400 or 404.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.jsonhttp import JsonEndpoint, PostFn

__all__ = ["ScoreServer"]

ScoreFn = Callable[[Mapping[str, str] | None], dict[str, Any]]
HealthFn = Callable[[], dict[str, Any]]
EstopFn = Callable[[bool], None]


def _targets(data: Any) -> Mapping[str, str] | None:
    """The ``targets`` of a decoded request body; ValueError with a one-line reason."""
    if data is None:
        return None
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


def _pressed(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("pressed"), bool):
        raise ValueError('body must be {"pressed": true} or {"pressed": false}')
    return bool(data["pressed"])


class ScoreServer(JsonEndpoint):
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
        post: dict[str, PostFn] = {}
        if score is not None:
            post["/score"] = lambda data: score(_targets(data))
        if estop is not None:

            def press(data: Any) -> dict[str, Any]:
                estop(_pressed(data))
                return health()

            post["/estop"] = press
        super().__init__({"/health": health}, post, host, port, name="plant-score-http")
