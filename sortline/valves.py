"""The valve bar as the line sees it: usage from the PLC's per-valve cycle
counters (``ValveUsage``), a health verdict by the alarms' rule
(``health``), and the valves an operator took out of service
(``OperatorDisable``, kept on ``SortingLine``). ``GET /valves`` reads them
(``sortline.api_valves``)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

from sortline.alarm_rules import neighbour_floor, valve_verdicts

__all__ = [
    "Health",
    "OperatorDisable",
    "UnknownValveError",
    "UsageView",
    "ValveRefusedError",
    "ValveUsage",
    "health",
]

Health = Literal["ok", "weak", "dead", "unknown"]
MINUTE_S = 60.0


class UnknownValveError(LookupError):
    """The bar has no such valve."""


class ValveRefusedError(ValueError):
    """The change would leave no valve enabled, or the calibration disabled it."""


@dataclass(frozen=True)
class OperatorDisable:
    """Who took a valve out of service, when (unix s) and why."""

    who: str
    t_unix_s: float
    reason: str


class UsageView(NamedTuple):
    """cycles: (V,) int64 the PLC's counters as last read (None: not read yet);
    last_minute: (V,) int64 cycles over the last 60 s (or since first read);
    last_used_unix_s: (V,) float64 when a counter last moved (NaN: not seen);
    ran: (V,) int64 cycles over the health window (None until a full window)."""

    cycles: np.ndarray | None
    last_minute: np.ndarray | None
    last_used_unix_s: np.ndarray | None
    ran: np.ndarray | None


class ValveUsage:
    """Per-valve cycle counters over time, fed with each PLC status the line
    publishes (any thread). A shorter counter list (another bar) or one that
    goes back (PLC restart) starts afresh."""

    def __init__(self, health_window_s: float) -> None:
        self.health_window_s = health_window_s
        self._keep_s = max(MINUTE_S, health_window_s)
        self._samples: deque[tuple[float, np.ndarray]] = deque()
        self._last: tuple[int, ...] = ()
        self._last_used: np.ndarray | None = None
        self._lock = threading.Lock()

    def add(self, t_unix_s: float, cycles: tuple[int, ...]) -> None:
        if not cycles:
            return
        with self._lock:
            if cycles != self._last:
                self._changed(t_unix_s, np.asarray(cycles, dtype=np.int64))
                self._last = cycles
            s = self._samples
            while len(s) > 1 and s[1][0] <= t_unix_s - self._keep_s:
                s.popleft()

    def _changed(self, t_unix_s: float, now: np.ndarray) -> None:
        s = self._samples
        prev = s[-1][1] if s else None
        if prev is None or len(prev) != len(now) or bool((now < prev).any()):
            s.clear()
            self._last_used = np.full(len(now), np.nan)
        else:
            assert self._last_used is not None
            self._last_used[now != prev] = t_unix_s
        s.append((t_unix_s, now))

    def view(self, t_unix_s: float) -> UsageView:
        with self._lock:
            s = self._samples
            if not s or self._last_used is None:
                return UsageView(None, None, None, None)
            now = s[-1][1]
            return UsageView(
                now.copy(),
                now - self._at(t_unix_s - MINUTE_S),
                self._last_used.copy(),
                None if t_unix_s - s[0][0] < self.health_window_s
                else now - self._at(t_unix_s - self.health_window_s),
            )  # fmt: skip

    def _at(self, t_unix_s: float) -> np.ndarray:
        """The counters as they stood at ``t_unix_s`` (the first ones seen if earlier)."""
        found = self._samples[0][1]
        for t, c in self._samples:
            if t > t_unix_s:
                break
            found = c
        return found


def health(
    ran: np.ndarray | None, min_cycles: int, weak_share: float, window_s: float
) -> list[Health]:
    """Per valve: ``dead``/``weak`` where ``valve_verdicts`` (the alarms' rule)
    flags it, ``ok`` where it judged the valve and found nothing, ``unknown``
    where it could not judge (neighbours too idle) or ``ran`` is None."""
    if ran is None:
        return []
    n = len(ran)
    flagged = valve_verdicts(ran, min_cycles, weak_share, window_s)
    lesser = neighbour_floor(ran)  # what valve_verdicts judges by
    out: list[Health] = []
    for v in range(n):
        if f"valve.{v}" in flagged:
            out.append("dead" if ran[v] == 0 else "weak")
        else:
            out.append("ok" if lesser[v] >= min_cycles else "unknown")
    return out
