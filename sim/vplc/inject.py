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

from collections.abc import Callable
from typing import Any

from core.jsonhttp import JsonEndpoint
from sim.vplc.server import BeltDriver

__all__ = ["InjectServer", "apply"]

_MAX_BODY = 4096
_MAX_SPEED_M_S = 65.0


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


class InjectServer(JsonEndpoint):
    """``apply`` and ``health()`` served on ``host:port`` (0: a free port)."""

    def __init__(
        self,
        belt: BeltDriver,
        health: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._belt, self._health = belt, health

        def route(path: str) -> Callable[[Any], dict[str, Any]]:
            def post(data: Any) -> dict[str, Any]:
                if not isinstance(data, dict):
                    raise ValueError("body must be a JSON object")
                apply(belt, path, data)
                return self._state()

            return post

        posts = {p: route(p) for p in ("/encoder", "/belt")}
        super().__init__(
            {"/health": self._state}, posts, host, port, max_body=_MAX_BODY, name="vplc-inject"
        )

    def _state(self) -> dict[str, Any]:
        out = dict(self._health())
        out.update(speed_m_s=self._belt.speed_mm_s / 1000.0, frozen=self._belt.frozen)
        return out
