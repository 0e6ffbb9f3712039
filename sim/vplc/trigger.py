"""The virtual PLC's camera trigger: a counter-compare on the encoder count
(plc/REGISTERS.md, HR 3 and IR 43-91). Pure, no locking (``PlcCore`` holds
the lock).
"""

from __future__ import annotations

from core.ticks import TICK_MODULUS, tick_diff
from plc import regmap as rm


class CameraTrigger:
    """Trigger points every ``every_ticks`` ticks and the latch ring they fill.

    ``next_tick``: the uint32 count of the next trigger (None when off);
    ``seq``: the last trigger's sequence number (0 before the first);
    ``latched``: per slot ``(seq, tick)``, slot ``seq % TRIGGER_SLOTS``.
    """

    def __init__(self) -> None:
        self.every_ticks = 0
        self.next_tick: int | None = None
        self.seq = 0
        self.count = 0  # triggers since boot (unbounded)
        self.latched: list[tuple[int, int]] = [(0, 0)] * rm.TRIGGER_SLOTS

    def set_every(self, every_ticks: int, tick_u32: int) -> None:
        """A write of HR 3 at encoder ``tick_u32``: a new period starts at the next
        multiple of it after the count; the same value again changes nothing."""
        if every_ticks == self.every_ticks:
            return
        self.every_ticks = every_ticks
        if every_ticks == 0:
            self.next_tick = None
        else:
            self.next_tick = (tick_u32 // every_ticks + 1) * every_ticks % TICK_MODULUS

    def advance(self, tick_u32: int) -> int:
        """The encoder moved to ``tick_u32``: latch every trigger point reached
        since the last call (none while the count is behind the next point).
        Returns how many fired."""
        nxt, n = self.next_tick, self.every_ticks
        if nxt is None:
            return 0
        ahead = tick_diff(tick_u32, nxt)
        if ahead < 0:
            return 0
        fired = ahead // n + 1
        first_kept = max(fired - rm.TRIGGER_SLOTS, 0)  # older ones are overwritten anyway
        seq = rm.trigger_seq_add(self.seq, first_kept)
        for k in range(first_kept, fired):
            seq = rm.trigger_seq_add(seq, 1)
            self.latched[seq % rm.TRIGGER_SLOTS] = (seq, (nxt + k * n) % TICK_MODULUS)
        self.seq = seq
        self.count += fired
        self.next_tick = (nxt + fired * n) % TICK_MODULUS
        return fired

    def words(self) -> list[int]:
        """IR 44..91."""
        return rm.pack_trigger_latch(self.latched)
