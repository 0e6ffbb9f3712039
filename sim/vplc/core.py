"""``PlcCore``: the virtual PLC's logic, with no sockets (plc/REGISTERS.md).

Two threads call it: the plant (``advance`` every physics step with the true
encoder count and its clock) and the Modbus server (``read_input``,
``read_holding``, ``write_holding``). One internal lock serialises them.

States: the machine is Stopped, Idle, Aborted or running; while running the
reported PackML state is Held when the heartbeat is stale (watchdog) or an
operator Hold is on, else Suspended when the belt stands (or an operator
Suspend is on), else Execute. Records are taken in Execute and Suspended only.
Leaving those states cancels every pulse (running ones are cut at the current
tick); Execute -> Suspended cuts running pulses and keeps the queued ones.
E-stop -> Aborted, latched until Clear/Reset with the E-stop released.
Every PackML command written is evaluated at once and reported in IR 92-94;
one the state does not allow is refused (``sim.vplc.machine``), still with a
normal write reply. The camera trigger (HR 3) latches the exact trigger
counts the belt passes in ``advance`` (``sim.vplc.trigger``).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from core.ticks import tick_diff
from core.types import Pulses
from plc import regmap as rm
from plc.regmap import (
    CommandResult,
    ExcCode,
    FaultBit,
    InputBit,
    PackMLCommand,
    PackMLState,
    SlotResult,
)
from sim.vplc.machine import Machine, check_command
from sim.vplc.pulses import PulseTable, count_cycles, diverter_state, valve_state
from sim.vplc.records import RecordError, check_ring_write
from sim.vplc.regio import HoldingImage, input_image
from sim.vplc.trigger import CameraTrigger

_FOLLOW_MAX_S = 0.5  # default: a caller further behind than this: the reported belt waits
_TAKES_RECORDS = (PackMLState.EXECUTE, PackMLState.SUSPENDED)
_NO_RUNS = Pulses.empty()  # immutable: shared by every call with nothing completed


class PlcCore:
    """The virtual PLC's state and pulse execution (thread-safe).

    n_valves:    valves on the bar (actuator 0), 1..256.
    n_diverters: diverter flaps (actuators 1..n_diverters), 0..16.
    watchdog_ms: heartbeat age that de-energises everything.
    clock:       time source (s) for the watchdog; None = the ``now_s`` the plant
                 passes to ``advance`` (stepped simulation).
    auto_start:  power on running (True) or Stopped (False).
    encoder_stall_s: encoder supervision (with ``clock`` only): while the belt
                 speed input says the belt runs, a count that has not moved
                 for this long is a stalled encoder (slipping wheel, cut
                 cable): the PLC goes Suspended, which cuts running pulses
                 (valves de-energised) and keeps queued ones until the count
                 moves again (``encoder_stalls`` counts them). None: off (the
                 plant's stepped simulation, where the count stands between frames).
    """

    def __init__(
        self,
        n_valves: int,
        n_diverters: int = 0,
        watchdog_ms: float = 300.0,
        *,
        clock: Callable[[], float] | None = None,
        auto_start: bool = True,
        boot_id: int | None = None,
        encoder_stall_s: float | None = None,
    ) -> None:
        if not 1 <= n_valves <= rm.MAX_VALVES:
            raise ValueError(f"n_valves {n_valves} outside 1..{rm.MAX_VALVES}")
        if not 0 <= n_diverters <= rm.MAX_DIVERTERS:
            raise ValueError(f"n_diverters {n_diverters} outside 0..{rm.MAX_DIVERTERS}")
        lo, hi = rm.WATCHDOG_MS_RANGE
        if not lo <= watchdog_ms <= hi:
            raise ValueError(f"watchdog_ms {watchdog_ms} outside {lo}..{hi}")
        self.n_valves = n_valves
        self.n_diverters = n_diverters
        self._lock = threading.RLock()
        self._clock = clock
        self._watchdog_ms = round(watchdog_ms)
        self.boot_id = boot_id if boot_id is not None else random.randrange(1, 1 << 16)
        self._machine = Machine.RUNNING if auto_start else Machine.STOPPED
        self._tick = 0
        self._encoder_stall_s = encoder_stall_s
        self._tick_moved_s: float | None = None
        self._encoder_stalled = False
        self._advanced_wall_s: float | None = None
        self._follow_mm_per_tick: float | None = None
        self._follow_max_s = _FOLLOW_MAX_S
        self._last_read_tick: int | None = None
        self._speed_mm_s = 0.0
        self._now_s = 0.0
        self._estop = False
        self._hold_manual = False
        self._suspend_manual = False
        self._hb_value = 0
        self._hb_stamp_s: float | None = None
        self._wd_tripped = False
        self._faults = 0
        self._state = self._effective_state()
        self._table = PulseTable()
        self._done: list[Pulses] = []
        self.holding = HoldingImage(self._watchdog_ms)
        self.counters = dict.fromkeys(
            ("executed", "late", "malformed", "cut", "watchdog_trips", "not_ready"), 0
        )
        self.counters["encoder_stalls"] = 0
        self.cycles = np.zeros(n_valves, dtype=np.int64)
        self.last_reject = (0, rm.RejectReason.NONE)
        self._trigger = CameraTrigger()
        self.last_command = (PackMLCommand.NONE, CommandResult.NONE)
        self.command_count = 0  # commands evaluated since boot (IR 94 is this mod 2**16)

    # ---- plant side -------------------------------------------------------
    def advance(
        self, tick_u32: int, speed_mm_s: float, now_s: float, *, wall_s: float | None = None
    ) -> Pulses:
        """Move to the true encoder count ``tick_u32`` at plant time ``now_s``.

        wall_s: the instant (``time.monotonic``) the belt was at that count, for
        reads that follow the wall clock (``follow_wall_clock``); None: now.

        Returns the runs completed since the last call (off tick reached, or cut
        short: then ``off_tick`` is the tick where it was cut), ``track_id`` =
        the record's sequence number.
        """
        if not 0 <= tick_u32 < 1 << 32:
            raise ValueError(f"encoder count {tick_u32} is not an unsigned 32-bit value")
        with self._lock:
            if int(tick_u32) != self._tick or self._tick_moved_s is None:
                self._tick_moved_s = self._watchdog_now_s()
            self._tick, self._speed_mm_s, self._now_s = int(tick_u32), float(speed_mm_s), now_s
            self._advanced_wall_s = time.monotonic() if wall_s is None else float(wall_s)
            self._trigger.advance(self._tick)
            self._settle()
            if len(self._table):
                fin = self._table.finished(self._tick)
                if fin.any():
                    runs = self._table.runs(fin)
                    self._finish(runs, SlotResult.EXECUTED)
                    self.counters["executed"] += len(runs)
                    self._table.keep(~fin)
                    self._done.append(runs)
            done, self._done = self._done, []
            if not done:
                return _NO_RUNS
            return done[0] if len(done) == 1 else Pulses.concat(done)

    def set_estop(self, active: bool) -> None:
        """The hardwired E-stop input (True = circuit open)."""
        with self._lock:
            self._estop = bool(active)
            if active:
                self._machine = Machine.ABORTED
                self._faults |= FaultBit.ESTOP
            self._settle()

    def next_trigger_tick(self) -> int | None:
        """The uint32 encoder count of the next camera trigger; None when off. A
        plant steps its physics exactly to it, so image and latch agree."""
        with self._lock:
            return self._trigger.next_tick

    @property
    def trigger_seq(self) -> int:
        """Sequence number of the last trigger (IR 43; 0 before the first)."""
        with self._lock:
            return self._trigger.seq

    @property
    def trigger_every_ticks(self) -> int:
        with self._lock:
            return self._trigger.every_ticks

    def valves_open(self) -> np.ndarray:
        """(n_valves,) bool: valves commanded open at the current tick."""
        with self._lock:
            return valve_state(self._table, self._tick, self.n_valves)

    def diverters_on(self) -> np.ndarray:
        """(n_diverters,) bool: flap k (actuator k) at index k-1 diverting."""
        with self._lock:
            return diverter_state(self._table, self._tick, self.n_diverters)

    @property
    def state(self) -> PackMLState:
        with self._lock:
            return self._state

    @property
    def faults(self) -> FaultBit:
        with self._lock:
            return FaultBit(self._faults)

    @property
    def acked_seq(self) -> int:
        with self._lock:
            return self.holding.acked_seq

    def heartbeat_age_s(self) -> float | None:
        """Seconds since the heartbeat last changed (watchdog clock); None before any."""
        with self._lock:
            if self._hb_stamp_s is None:
                return None
            return self._watchdog_now_s() - self._hb_stamp_s

    def pending(self) -> int:
        """Accepted pulses not yet completed."""
        with self._lock:
            return len(self._table)

    # ---- Modbus side ------------------------------------------------------
    def read_input(self, address: int, count: int) -> list[int] | ExcCode:
        """FC 4. Words, or the exception code for an unmapped range."""
        with self._lock:
            self._settle()
            return input_image(self, address, count)

    def read_holding(self, address: int, count: int) -> list[int] | ExcCode:
        """FC 3 (and the read half of FC 23)."""
        with self._lock:
            self._settle()
            self.holding.refresh(self._read_tick(), self._state)
            return self.holding.read(address, count)

    def write_holding(self, address: int, values: Sequence[int]) -> ExcCode | None:
        """FC 6/16 (and the write half of FC 23): validated, then applied."""
        with self._lock:
            region = self.holding.region(address, len(values))
            if region is None:
                return self._refuse(0, rm.RejectReason.BAD_ADDRESS, ExcCode.ILLEGAL_ADDRESS)
            if region == "control":
                return self._write_control(address, values)
            return self._write_ring(address, values)

    # ---- internals (lock held) -------------------------------------------
    def _watchdog_now_s(self) -> float:
        return self._clock() if self._clock is not None else self._now_s

    def heartbeat_ok(self) -> bool:
        if self._hb_stamp_s is None:
            return False
        return self._watchdog_now_s() - self._hb_stamp_s <= self._watchdog_ms / 1000.0

    def input_bits(self) -> int:
        bits = InputBit.ESTOP if self._estop else InputBit(0)
        if self._speed_mm_s > 0:
            bits |= InputBit.BELT_RUNNING
        if self._hb_stamp_s is not None:
            bits |= InputBit.WATCHDOG_ARMED
            if self.heartbeat_ok():
                bits |= InputBit.HEARTBEAT_OK
        return int(bits)

    def follow_wall_clock(
        self, mm_per_tick: float | None, max_ahead_s: float = _FOLLOW_MAX_S
    ) -> None:
        """Reads of the encoder (IR 0-1, HR 101-102) move with the wall clock
        between ``advance`` calls, at the last speed, as a real encoder does
        while the PLC's caller is busy: the count the belt has at the instant
        of the read, from the count last advanced to and the instant the belt
        was there (``advance``'s ``wall_s``). At most ``max_ahead_s`` ahead of
        that count, and never backwards: a caller further behind than that
        (or whose clock jumped back) is a belt that waited, and the reads stand
        until the caller passes them. None: reads show the last advanced count
        (stepped simulation, where the belt stands still between frames).
        Pulses and triggers still run on the advanced count."""
        if mm_per_tick is not None and not mm_per_tick > 0:
            raise ValueError(f"mm_per_tick {mm_per_tick} must be > 0")
        if not max_ahead_s > 0:
            raise ValueError(f"max_ahead_s {max_ahead_s} must be > 0")
        with self._lock:
            self._follow_mm_per_tick = mm_per_tick
            self._follow_max_s = float(max_ahead_s)
            self._advanced_wall_s = time.monotonic()  # the belt is at the advanced count now
            self._last_read_tick = None

    def _read_tick(self) -> int:
        mm = self._follow_mm_per_tick
        if mm is None or self._advanced_wall_s is None:
            return self._tick
        ahead_s = min(max(time.monotonic() - self._advanced_wall_s, 0.0), self._follow_max_s)
        tick = (self._tick + int(self._speed_mm_s * ahead_s / mm)) % (1 << 32)
        last = self._last_read_tick
        if (
            last is not None
            and 0 < tick_diff(last, tick) <= self._speed_mm_s * self._follow_max_s / mm + 1
        ):
            tick = last  # the belt waited for a caller far behind: never read backwards
        self._last_read_tick = tick
        return tick

    def status_words(self) -> dict[str, int]:
        """Scalar IR values by register name (for ``input_image``)."""
        c = self.counters
        return {
            "encoder_count": self._read_tick(),
            "belt_speed": min(round(max(self._speed_mm_s, 0.0)), 0xFFFF),
            "packml_state": int(self._state),
            "inputs": self.input_bits(),
            "faults": self._faults,
            "acked_seq": self.holding.acked_seq,
            "heartbeat_echo": self._hb_value,
            "n_valves": self.n_valves,
            "n_diverters": self.n_diverters,
            "ring_slots": rm.RING_SLOTS,
            "last_reject_seq": self.last_reject[0],
            "last_reject_reason": int(self.last_reject[1]),
            "boot_id": self.boot_id,
            "pulses_executed": c["executed"],
            "rejected_late": c["late"],
            "rejected_malformed": c["malformed"],
            "pulses_cut": c["cut"],
            "watchdog_trips": c["watchdog_trips"],
            "rejected_not_ready": c["not_ready"],
            "trigger_seq": self._trigger.seq,
            "last_command": int(self.last_command[0]),
            "command_result": int(self.last_command[1]),
            "command_count": self.command_count,
        }

    def trigger_latch_words(self) -> list[int]:
        """IR 44..91 (for ``input_image``)."""
        return self._trigger.words()

    def _effective_state(self) -> PackMLState:
        if self._machine is Machine.STOPPED:
            return PackMLState.STOPPED
        if self._machine is Machine.IDLE:
            return PackMLState.IDLE
        if self._machine is Machine.ABORTED:
            return PackMLState.ABORTED
        if self._hold_manual or self._wd_tripped:
            return PackMLState.HELD
        if self._suspend_manual or self._speed_mm_s <= 0 or self._encoder_stalled:
            return PackMLState.SUSPENDED
        return PackMLState.EXECUTE

    def _settle(self) -> None:
        """Re-evaluate watchdog and state; cancel/cut pulses on the way out."""
        armed = self._hb_stamp_s is not None
        if armed and not self._wd_tripped and not self.heartbeat_ok():
            self._wd_tripped = True
            self._faults |= FaultBit.WATCHDOG
            self.counters["watchdog_trips"] += 1
        elif self._wd_tripped and self.heartbeat_ok():
            self._wd_tripped = False
        self._supervise_encoder()
        new = self._effective_state()
        if new not in _TAKES_RECORDS:
            self._cancel_all()
        elif new is PackMLState.SUSPENDED and self._state is PackMLState.EXECUTE:
            self._cut(self._table.started(self._tick))
        self._state = new

    def _supervise_encoder(self) -> None:
        limit, moved = self._encoder_stall_s, self._tick_moved_s
        if limit is None or moved is None or self._clock is None:
            return
        stalled = self._speed_mm_s > 0 and self._clock() - moved > limit
        if stalled and not self._encoder_stalled:
            self.counters["encoder_stalls"] += 1
        self._encoder_stalled = stalled

    def _cancel_all(self) -> None:
        self._cut(np.ones(len(self._table), dtype=bool))

    def _cut(self, mask: np.ndarray) -> None:
        """End pulses ``mask`` now: running ones are cut at the current tick."""
        if not mask.any():
            return
        started = self._table.started(self._tick) & mask
        on_now = (self._table.on_tick == self._tick) & started  # zero-length: never ran
        ran = started & ~on_now
        if ran.any():
            runs = self._table.runs(ran, off_tick=self._tick)
            self._finish(runs, SlotResult.CUT)
            self._done.append(runs)
        cancelled = mask & ~ran
        self._set_results(self._table.seq[cancelled], SlotResult.CANCELLED)
        self.counters["cut"] += int(np.count_nonzero(mask))
        self._table.keep(~mask)

    def _finish(self, runs: Pulses, result: SlotResult) -> None:
        count_cycles(self.cycles, runs)
        self._set_results(runs.track_id, result)

    def _set_results(self, seqs: np.ndarray, result: SlotResult) -> None:
        for seq in seqs.tolist():
            self.holding.set_result(int(seq), result)

    def _refuse(self, seq: int, reason: rm.RejectReason, exc: ExcCode) -> ExcCode:
        self.last_reject = (seq, reason)
        self._faults |= FaultBit.MALFORMED
        self.counters["malformed"] += 1
        return exc

    def _write_control(self, address: int, values: Sequence[int]) -> ExcCode | None:
        words = dict(zip(range(address, address + len(values)), values, strict=True))
        lo, hi = rm.WATCHDOG_MS_RANGE
        wd = words.get(rm.HR_WATCHDOG_MS)
        cmd = words.get(rm.HR_COMMAND)
        every = words.get(rm.HR_TRIGGER_EVERY)
        bad = (
            (wd is not None and not lo <= wd <= hi)
            or (cmd is not None and cmd not in PackMLCommand._value2member_map_)
            or (every is not None and not rm.TRIGGER_EVERY_RANGE[0] <= every
                <= rm.TRIGGER_EVERY_RANGE[1])
        )  # fmt: skip
        if bad:
            return self._refuse(0, rm.RejectReason.BAD_VALUE, ExcCode.ILLEGAL_VALUE)
        hb = words.get(rm.HR_HEARTBEAT)
        if hb is not None and (self._hb_stamp_s is None or hb != self._hb_value):
            self._hb_value, self._hb_stamp_s = int(hb), self._watchdog_now_s()
            self.holding.heartbeat = int(hb)
        if wd is not None:
            self._watchdog_ms = int(wd)
            self.holding.watchdog_ms = int(wd)
        if every is not None:
            self._trigger.set_every(int(every), self._tick)
            self.holding.trigger_every_ticks = int(every)
        if cmd:
            code = PackMLCommand(cmd)
            self.last_command = (code, self._command(code))
            self.command_count += 1
        self._settle()
        return None

    def _command(self, cmd: PackMLCommand) -> CommandResult:
        m = self._machine
        verdict = check_command(cmd, m, self._estop)
        if verdict is not CommandResult.TAKEN:
            return verdict
        if cmd is PackMLCommand.RESET:
            self._faults = 0
            if m in (Machine.STOPPED, Machine.ABORTED):
                self._machine = Machine.IDLE
        elif cmd is PackMLCommand.CLEAR:
            self._machine, self._faults = Machine.STOPPED, 0
        elif cmd is PackMLCommand.START:
            self._machine, self._hold_manual, self._suspend_manual = Machine.RUNNING, False, False
        elif cmd is PackMLCommand.STOP:
            self._machine = Machine.STOPPED
        elif cmd is PackMLCommand.ABORT:
            self._machine = Machine.ABORTED
        elif cmd in (PackMLCommand.HOLD, PackMLCommand.UNHOLD):
            self._hold_manual = cmd is PackMLCommand.HOLD
        elif cmd in (PackMLCommand.SUSPEND, PackMLCommand.UNSUSPEND):
            self._suspend_manual = cmd is PackMLCommand.SUSPEND
        return CommandResult.TAKEN

    def _write_ring(self, address: int, values: Sequence[int]) -> ExcCode | None:
        try:
            new = check_ring_write(
                address, values, self.holding.acked_seq, self.n_valves, self.n_diverters
            )
        except RecordError as err:
            return self._refuse(err.seq, err.reason, err.exc)
        self.holding.store_ring(address, values)
        self._settle()
        taken: list[tuple[int, int, int, int, int, int]] = []
        for row in new:
            if self._take(row[0], row[4], room=rm.MAX_PENDING - len(self._table) - len(taken)):
                taken.append(row)
        self._table.add(taken)
        return None

    def _take(self, seq: int, on_tick: int, room: int) -> bool:
        """Acknowledge record ``seq``; True if it is to be executed."""
        self.holding.acked_seq = seq
        if self._state not in _TAKES_RECORDS or room <= 0:
            self.counters["not_ready"] += 1
            reason = rm.RejectReason.NOT_READY if room > 0 else rm.RejectReason.TABLE_FULL
            self.last_reject = (seq, reason)
            self.holding.set_result(seq, SlotResult.NOT_READY)
            return False
        if tick_diff(on_tick, self._tick) < 0:
            self.counters["late"] += 1
            self.last_reject = (seq, rm.RejectReason.LATE)
            self.holding.set_result(seq, SlotResult.LATE)
            return False
        self.holding.set_result(seq, SlotResult.ACCEPTED)
        return True
