"""The virtual PLC's table of accepted pulse commands and their execution.

Pure NumPy, no locking (``PlcCore`` holds the lock). A pulse is active
exactly while ``on_tick <= tick < off_tick`` (signed 32-bit differences,
core/ticks.py), and completes once ``tick >= off_tick``.
"""

from __future__ import annotations

import numpy as np

from core.ticks import tick_diff_array
from core.types import Pulses

_FIELDS = ("seq", "actuator", "first_valve", "last_valve", "on_tick", "off_tick")


class PulseTable:
    """Accepted, not yet completed pulses as parallel int64 arrays (K rows)."""

    def __init__(self) -> None:
        self.seq = np.zeros(0, dtype=np.int64)
        self.actuator = np.zeros(0, dtype=np.int64)
        self.first_valve = np.zeros(0, dtype=np.int64)
        self.last_valve = np.zeros(0, dtype=np.int64)
        self.on_tick = np.zeros(0, dtype=np.int64)
        self.off_tick = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def add(self, rows: list[tuple[int, int, int, int, int, int]]) -> None:
        """Append rows of (seq, actuator, first, last, on, off)."""
        if not rows:
            return
        cols = np.asarray(rows, dtype=np.int64).reshape(-1, len(_FIELDS))
        for i, name in enumerate(_FIELDS):
            setattr(self, name, np.concatenate([getattr(self, name), cols[:, i]]))

    def keep(self, mask: np.ndarray) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(self, name)[mask])

    def started(self, tick_u32: int) -> np.ndarray:
        """(K,) bool: on tick reached at ``tick_u32``."""
        return tick_diff_array(self.on_tick, tick_u32) <= 0

    def finished(self, tick_u32: int) -> np.ndarray:
        """(K,) bool: off tick reached at ``tick_u32``."""
        return tick_diff_array(self.off_tick, tick_u32) <= 0

    def active(self, tick_u32: int) -> np.ndarray:
        """(K,) bool: ``on_tick <= tick < off_tick``."""
        return self.started(tick_u32) & ~self.finished(tick_u32)

    def runs(self, mask: np.ndarray, off_tick: int | None = None) -> Pulses:
        """Rows ``mask`` as ``Pulses`` (``track_id`` = seq, ``fraction`` = -1).

        ``off_tick`` replaces the commanded off tick (a run cut short there).
        """
        n = int(np.count_nonzero(mask))
        off = self.off_tick[mask] if off_tick is None else np.full(n, off_tick, dtype=np.int64)
        return Pulses(
            actuator=self.actuator[mask].astype(np.int16),
            first_valve=self.first_valve[mask].astype(np.int16),
            last_valve=self.last_valve[mask].astype(np.int16),
            on_tick=self.on_tick[mask].astype(np.uint32),
            off_tick=off.astype(np.uint32),
            track_id=self.seq[mask],
            fraction=np.full(n, -1, dtype=np.int16),
        )


def valve_state(table: PulseTable, tick_u32: int, n_valves: int) -> np.ndarray:
    """(n_valves,) bool: valves of actuator 0 commanded open at ``tick_u32``."""
    if not len(table):
        return np.zeros(n_valves, dtype=bool)
    sel = table.active(tick_u32) & (table.actuator == 0)
    delta = np.zeros(n_valves + 1, dtype=np.int64)
    np.add.at(delta, table.first_valve[sel], 1)
    np.add.at(delta, table.last_valve[sel] + 1, -1)
    return np.cumsum(delta[:n_valves]) > 0


def diverter_state(table: PulseTable, tick_u32: int, n_diverters: int) -> np.ndarray:
    """(n_diverters,) bool: flap k (1-based actuator) at index k-1 diverting."""
    sel = table.active(tick_u32) & (table.actuator > 0)
    out = np.zeros(n_diverters, dtype=bool)
    out[table.actuator[sel] - 1] = True
    return out


def count_cycles(cycles: np.ndarray, runs: Pulses) -> None:
    """Add one cycle per run to each valve it opened (actuator 0 only), in place."""
    sel = runs.actuator == 0
    delta = np.zeros(cycles.shape[0] + 1, dtype=np.int64)
    np.add.at(delta, runs.first_valve[sel].astype(np.int64), 1)
    np.add.at(delta, runs.last_valve[sel].astype(np.int64) + 1, -1)
    cycles += np.cumsum(delta[:-1])
