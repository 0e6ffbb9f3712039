"""The bridge's bookkeeping as plain data and pure functions (no I/O).

``Session`` holds what the last reads said about the PLC and the line
parameters in force (``set_params``), and decides, from those, which pulses
can still meet their deadline and what an acknowledgement block means.
``BridgeCounters`` counts pulse fates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from core.ticks import tick_diff_array, wrap_tick
from plc import regmap as rm

Row = tuple[int, int, int, int, int]  # actuator, first_valve, last_valve, on_tick, off_tick


@dataclasses.dataclass
class BridgeCounters:
    submitted: int = 0
    sent: int = 0
    acked: int = 0
    late: int = 0
    rejected_by_plc: int = 0
    invalid: int = 0
    overflow: int = 0
    stale: int = 0
    reconnects: int = 0
    read_errors: int = 0
    resolved: int = 0  # acked + late + rejected_by_plc + invalid + overflow + stale


@dataclasses.dataclass
class Session:
    """The PLC as last read. ``tick`` (uint32) was valid at ``tick_t_s``.
    ``mm_per_tick`` and ``deadline_lead_ms``: what the deadline check uses,
    version ``params_version`` (0: from the config)."""

    mm_per_tick: float
    deadline_lead_ms: float
    params_version: int = 0
    connected: bool = False
    tick: int | None = None
    tick_t_s: float = 0.0
    speed_mm_s: float = 0.0
    state: int = 0
    inputs: int = 0
    faults: int = 0
    acked_seq: int = 0
    boot_id: int = -1
    n_valves: int = 0
    n_diverters: int = 0
    heartbeat: int = 0
    plc_counters: dict[str, int] = dataclasses.field(default_factory=dict)
    valve_cycles: tuple[int, ...] = ()
    next_seq: int = 1
    last_error: str = ""
    trigger_seq: int = 0
    last_command: int = 0  # IR 92-94
    command_result: int = 0
    command_count: int = 0

    def set_params(self, mm_per_tick: float, deadline_lead_ms: float) -> None:
        """Replace the line parameters (ValueError unless mm_per_tick > 0 and
        deadline_lead_ms >= 0, both finite)."""
        check_params(mm_per_tick, deadline_lead_ms)
        self.mm_per_tick, self.deadline_lead_ms = float(mm_per_tick), float(deadline_lead_ms)
        self.params_version += 1

    def estimate_tick(self, now_s: float) -> int | None:
        """The encoder at ``now_s``: last reading + speed x elapsed (uint32)."""
        if self.tick is None:
            return None
        travel = self.speed_mm_s * max(now_s - self.tick_t_s, 0.0) / self.mm_per_tick
        return wrap_tick(self.tick + int(travel))

    def deadline_mask(self, on_ticks: Sequence[int], now_s: float, extrapolate: bool) -> np.ndarray:
        """(K,) bool: on tick minus the lead still ahead of the estimated encoder
        (at ``now_s``, or at the last reading when not ``extrapolate``)."""
        est = self.estimate_tick(now_s if extrapolate else self.tick_t_s)
        if est is None:
            return np.ones(len(on_ticks), dtype=bool)  # nothing known yet: decide at send
        lead_ticks = self.deadline_lead_ms / 1000.0 * self.speed_mm_s / self.mm_per_tick
        ahead = tick_diff_array(np.asarray(on_ticks, dtype=np.int64), est)
        return np.asarray(ahead > lead_ticks)

    def fits(self, row: Row) -> bool:
        """The PLC's bar has these valves / this flap (as it reported them)."""
        act, first, last = row[0], row[1], row[2]
        if act == 0:
            return 0 <= first <= last < self.n_valves
        return act <= self.n_diverters and first == 0 and last == 0

    def apply_ack(
        self, ack: Sequence[int], seq0: int, n: int, t_s: float
    ) -> tuple[int, list[rm.SlotResult]]:
        """Records ``seq0 .. seq0+n-1`` against an HR 100.. block read at ``t_s``:
        how many were taken, and their results (in order)."""
        acked = int(ack[0])
        self.acked_seq = acked
        self.tick, self.tick_t_s = rm.unpack_u32(ack[1], ack[2]), t_s
        self.state = int(ack[3])
        taken = min(max(rm.seq_diff(acked, seq0) + 1, 0), n)
        results = []
        for i in range(taken):
            code = int(ack[4 + rm.seq_add(seq0, i) % rm.RING_SLOTS])
            results.append(rm.SlotResult(code) if code in rm.SlotResult._value2member_map_
                           else rm.SlotResult.EMPTY)  # fmt: skip
        return taken, results


def check_params(mm_per_tick: float, deadline_lead_ms: float) -> None:
    ok_scale = math.isfinite(mm_per_tick) and mm_per_tick > 0
    if not (ok_scale and math.isfinite(deadline_lead_ms) and deadline_lead_ms >= 0):
        raise ValueError(
            f"line params: mm_per_tick {mm_per_tick} must be > 0 and deadline_lead_ms "
            f"{deadline_lead_ms} >= 0"
        )


def decode_status(s: Session, words: Sequence[int], t_s: float) -> None:
    """IR 0..IR_STATUS_WORDS-1 into ``s`` (the trigger latches excepted: see
    ``bridge_history.LatchTracker``); ``t_s`` when the encoder was sampled."""
    s.tick = rm.unpack_u32(words[rm.IR_ENCODER], words[rm.IR_ENCODER + 1])
    s.tick_t_s = t_s
    s.speed_mm_s = float(words[rm.IR_SPEED])
    s.state = int(words[rm.IR_STATE])
    s.inputs = int(words[rm.IR_INPUTS])
    s.faults = int(words[rm.IR_FAULTS])
    s.acked_seq = int(words[rm.IR_ACKED_SEQ])
    s.n_valves = int(words[rm.IR_N_VALVES])
    s.n_diverters = int(words[rm.IR_N_VALVES + 1])
    s.boot_id = int(words[rm.IR_BOOT_ID])
    s.trigger_seq = int(words[rm.IR_TRIGGER_SEQ])
    s.last_command = int(words[rm.IR_LAST_COMMAND])
    s.command_result = int(words[rm.IR_COMMAND_RESULT])
    s.command_count = int(words[rm.IR_COMMAND_COUNT])
    s.plc_counters = {
        name: rm.unpack_u32(words[rm.reg(name).address], words[rm.reg(name).address + 1])
        for name in PLC_COUNTERS
    }


PLC_COUNTERS = ("pulses_executed", "rejected_late", "rejected_malformed", "pulses_cut",
                "watchdog_trips", "rejected_not_ready")  # fmt: skip


def decode_cycles(words: Sequence[int]) -> tuple[int, ...]:
    """IR 100.. (2 words per valve, high first) -> per-valve cycle counts."""
    return tuple(rm.unpack_u32(words[i], words[i + 1]) for i in range(0, len(words) - 1, 2))
