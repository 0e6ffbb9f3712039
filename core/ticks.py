"""Encoder tick arithmetic: unsigned 32-bit counts that wrap.

The PLC counts belt travel in ticks modulo 2**32. Differences between two
counts are taken as signed 32-bit values (valid while the counts are less than
2**31 ticks apart), and a running controller keeps an unwrapped 64-bit count.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

TICK_MODULUS = 1 << 32
HALF_RANGE = 1 << 31


def wrap_tick(tick: int) -> int:
    """An unbounded tick count as the PLC's unsigned 32-bit count."""
    return tick % TICK_MODULUS


def tick_diff(a_tick: int, b_tick: int) -> int:
    """Signed ticks from ``b`` to ``a`` (``a - b``) across the 32-bit wrap."""
    return ((a_tick - b_tick + HALF_RANGE) % TICK_MODULUS) - HALF_RANGE


def tick_diff_array(a_tick: npt.ArrayLike, b_tick: int) -> np.ndarray:
    """Vectorised ``tick_diff`` -> int64 array."""
    a = np.asarray(a_tick, dtype=np.int64)
    return ((a - int(b_tick) + HALF_RANGE) % TICK_MODULUS) - HALF_RANGE


class TickUnwrapper:
    """Turns successive 32-bit counts into a monotone-ish 64-bit count.

    Each new count is placed nearest to the previous unwrapped value, so the
    belt may run up to 2**31 ticks between two readings in either direction.
    """

    def __init__(self) -> None:
        self._last: int | None = None

    def __call__(self, tick_u32: int) -> int:
        if not 0 <= tick_u32 < TICK_MODULUS:
            raise ValueError(f"encoder count {tick_u32} is not an unsigned 32-bit value")
        if self._last is None:
            self._last = int(tick_u32)
        else:
            self._last += tick_diff(int(tick_u32), wrap_tick(self._last))
        return self._last

    @property
    def last(self) -> int | None:
        return self._last
