"""Register images of the virtual PLC: what FC 3/4 read, where writes may go.

``HoldingImage`` keeps the holding registers (control words, the read-only
acknowledgement block, the ring); ``input_image`` renders the input registers
from a ``PlcCore``'s state. Both follow ``plc.regmap.REGISTERS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from plc import regmap as rm
from plc.regmap import ExcCode, PackMLState, SlotResult

if TYPE_CHECKING:
    from sim.vplc.core import PlcCore

Region = Literal["control", "ring"]

_ACK = rm.reg("ack_seq")
_RESULTS = rm.reg("slot_result")
_RING = rm.reg("pulse_ring")
_CYCLES = rm.reg("valve_cycles")
_LATCH = rm.reg("trigger_latch")


def _within(address: int, count: int, start: int, end: int) -> bool:
    return count >= 1 and start <= address and address + count <= end


class HoldingImage:
    """The holding registers: HR 0-3, 100-135 (read-only), 200-455."""

    def __init__(self, watchdog_ms: int) -> None:
        self.heartbeat = 0
        self.watchdog_ms = watchdog_ms
        self.trigger_every_ticks = 0
        self.acked_seq = 0
        self.results = [int(SlotResult.EMPTY)] * rm.RING_SLOTS
        self.ring = [0] * _RING.words
        self._ack_tail = [0, 0, 0]  # encoder hi, lo, state

    @staticmethod
    def region(address: int, count: int) -> Region | None:
        """Where a write of ``count`` words at ``address`` lands (None: refused)."""
        if _within(address, count, 0, rm.HR_CONTROL_WORDS):
            return "control"
        if _within(address, count, _RING.address, _RING.end):
            return "ring"
        return None

    def refresh(self, tick_u32: int, state: PackMLState) -> None:
        self._ack_tail = [*rm.pack_u32(tick_u32), int(state)]

    def set_result(self, seq: int, result: SlotResult) -> None:
        """Record ``result`` for ``seq`` if its slot still holds that record."""
        slot = seq % rm.RING_SLOTS
        if self.ring[slot * rm.RECORD_WORDS] == seq:
            self.results[slot] = int(result)

    def store_ring(self, address: int, values: Sequence[int]) -> None:
        off = address - _RING.address
        self.ring[off : off + len(values)] = [int(v) for v in values]

    def read(self, address: int, count: int) -> list[int] | ExcCode:
        if _within(address, count, 0, rm.HR_CONTROL_WORDS):
            words = [self.heartbeat, self.watchdog_ms, 0, self.trigger_every_ticks]
            return words[address : address + count]
        if _within(address, count, _ACK.address, _RESULTS.end):
            words = [self.acked_seq, *self._ack_tail, *self.results]
            off = address - _ACK.address
            return words[off : off + count]
        if _within(address, count, _RING.address, _RING.end):
            off = address - _RING.address
            return self.ring[off : off + count]
        return ExcCode.ILLEGAL_ADDRESS


def _scalar_words(values: dict[str, int]) -> list[int]:
    """IR 0..IR_STATUS_WORDS-1 from scalar values by register name."""
    out = [0] * rm.IR_STATUS_WORDS
    for name, value in values.items():
        r = rm.reg(name)
        if r.words == 2:
            out[r.address], out[r.address + 1] = rm.pack_u32(value % (1 << 32))
        else:
            out[r.address] = value & 0xFFFF  # u16 counters wrap
    return out


def input_image(core: PlcCore, address: int, count: int) -> list[int] | ExcCode:
    """FC 4 words of ``core`` (lock held by the caller)."""
    if _within(address, count, 0, rm.IR_STATUS_WORDS):
        words = _scalar_words(core.status_words())
        valves = rm.reg("valves_open")
        words[valves.address : valves.end] = rm.pack_bits(core.valves_open(), valves.words)
        words[rm.IR_DIVERTERS_ON] = rm.pack_bits(core.diverters_on(), 1)[0]
        words[_LATCH.address : _LATCH.end] = core.trigger_latch_words()
        return words[address : address + count]
    cycles_end = _CYCLES.address + 2 * core.n_valves
    if _within(address, count, _CYCLES.address, cycles_end):
        words = []
        for c in core.cycles.tolist():
            words.extend(rm.pack_u32(int(c) % (1 << 32)))
        off = address - _CYCLES.address
        return words[off : off + count]
    return ExcCode.ILLEGAL_ADDRESS
