"""THE register map: sortline's contract with the PLC, as one table.

``REGISTERS`` is the single source of truth. The address constants below are
looked up from it, ``plc/REGISTERS.md`` is rendered from it
(``python -m plc.regmap > plc/REGISTERS.md``; a test keeps the two equal), and
the virtual PLC builds its Modbus blocks from it.

Conventions:
- Addresses are 0-based protocol addresses (``mbpoll -0``; add 1 for 1-based
  tools). Input registers (FC 4) are read-only; holding registers are read
  with FC 3 and written with FC 6/16, or FC 23 (write then read in one request).
- 32-bit values take two registers, **high word first**.
- No coils or discrete inputs: FC 1/2/5/15 get exception 01.

Pulse ring: each command is an 8-register record ``[seq, actuator,
first_valve, last_valve, on_hi, on_lo, off_hi, off_lo]`` stored in slot
``seq % RING_SLOTS``. ``seq`` is a 16-bit counter that wraps; the PLC takes
records strictly in order (the one after ``acked_seq``), so a repeated write
of records already taken is harmless (retries are idempotent). A write that
holds a malformed record is refused as a whole (exception 03) and counted.
Actuator 0 is the air-jet valve bar (valves ``first..last``); actuator k >= 1
is diverter flap k, with ``first = last = 0``, diverting from on to off tick.

Camera trigger (HR 3, IR 43-91): with ``trigger_every_ticks`` = N > 0 the PLC
pulses its camera-trigger output each time the encoder count reaches the next
trigger point: a counter-compare on the unsigned 32-bit count. When N is
written with a new value, the first point is the next multiple of N after the
current count; each later point is the previous one + N (mod 2**32), so the
period holds across the wrap. 0 turns the trigger off (the power-on default);
writing the value already set changes nothing. Each trigger adds 1 to
``trigger_seq`` (1, 2, ... 65535, then 1 again: 0 means no trigger since boot)
and latches ``[seq, count_hi, count_lo]`` in slot ``seq % TRIGGER_SLOTS`` of
``trigger_latch``; the count is the trigger point itself (k*N), not the count
at the scan. The trigger runs in every state (it is not a valve output).

PackML commands (HR 2): every non-zero code written is evaluated at once:
``last_command`` takes its code, ``command_result`` a ``CommandResult`` and
``command_count`` (u16, wraps) goes up by one. A command the state does not
allow is refused (still a normal write reply, not an exception): Start only
from Idle; Stop from Idle or running; Clear only from Aborted; Hold, Unhold,
Suspend, Unsuspend only while running (Execute, Suspended, Held); Reset
(clears latched faults; Stopped/Aborted -> Idle) and Clear need the E-stop
released (``REFUSED_ESTOP``); Abort always.

What the PLC does (the virtual PLC in ``sim/`` implements exactly this):
- executes a record's valves exactly while ``on_tick <= encoder < off_tick``
  (signed 32-bit differences across the wrap); a record whose on tick has
  passed when it is taken is acknowledged but not executed (``LATE``);
- holds up to ``MAX_PENDING`` (4096) accepted pulses (else ``NOT_READY``,
  reason ``TABLE_FULL``);
- takes records only in Execute or Suspended (else ``NOT_READY``); leaving
  those states de-energises everything; Execute -> Suspended (belt stopped)
  cuts running pulses and keeps the queued ones;
- watchdog: when HR 0 has not changed for ``watchdog_ms``, all outputs drop,
  fault WATCHDOG latches and the state is Held until the heartbeat moves again;
- E-stop: Aborted, latched until Reset (or Clear) with the E-stop released,
  then Start; faults latch until Reset/Clear.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Table = Literal["ir", "hr"]
Access = Literal["PLC->ctrl", "ctrl->PLC", "both"]

RING_SLOTS = 32
RECORD_WORDS = 8
MAX_VALVES = 256
MAX_DIVERTERS = 16
MAX_WRITE_WORDS = 121  # FC 23 write limit (FC 16 allows 123)
MAX_READ_WORDS = 125
RECORDS_PER_WRITE = MAX_WRITE_WORDS // RECORD_WORDS  # 15
MAX_PENDING = 4096  # pulses a PLC holds between acceptance and completion
SEQ_MODULUS = 1 << 16
TRIGGER_SLOTS = 16  # trigger latch ring
TRIGGER_WORDS = 3  # [seq, count_hi, count_lo]
TRIGGER_SEQ_PERIOD = SEQ_MODULUS - 1  # trigger seq runs 1..65535 (0: none since boot)
DEFAULT_DEVICE_ID = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Register:
    """One row of the map. ``words`` is the total size (arrays included)."""

    name: str
    table: Table
    address: int
    words: int
    type: str
    units: str
    access: Access
    meaning: str

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.address + self.words


class PackMLState(enum.IntEnum):
    """PackML (ISA-TR88) state codes as the PLC reports them in IR 3 (and as the
    controller names its own line state, ``sortline.state``)."""

    UNDEFINED = 0
    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17


class PackMLCommand(enum.IntEnum):
    """Codes written to HR 2 (the PLC clears it to 0 once taken)."""

    NONE = 0
    RESET = 1
    START = 2
    STOP = 3
    HOLD = 4
    UNHOLD = 5
    SUSPEND = 6
    UNSUSPEND = 7
    ABORT = 8
    CLEAR = 9


class InputBit(enum.IntFlag):
    """IR 4: live inputs."""

    ESTOP = 1 << 0  # E-stop circuit open (hardwired; software only observes)
    BELT_RUNNING = 1 << 1
    HEARTBEAT_OK = 1 << 2  # heartbeat younger than the watchdog timeout
    WATCHDOG_ARMED = 1 << 3  # a heartbeat has been seen since power-on


class FaultBit(enum.IntFlag):
    """IR 5: latched faults; cleared by PackML Reset or Clear."""

    WATCHDOG = 1 << 0  # heartbeat went stale: valves were de-energised
    ESTOP = 1 << 1  # E-stop opened: valves were de-energised
    MALFORMED = 1 << 2  # informational: a write was refused (see IR 11-12)


class SlotResult(enum.IntEnum):
    """HR 104..: what the PLC did with the record last taken from each slot."""

    EMPTY = 0
    ACCEPTED = 1  # queued, waiting for its on tick or running
    EXECUTED = 2  # ran to its off tick
    LATE = 3  # on tick already passed: not executed
    NOT_READY = 4  # not in Execute/Suspended, or its table is full: not executed
    CUT = 5  # cut short (watchdog, E-stop, abort, stop, hold)
    CANCELLED = 6  # dropped before its on tick (same causes)


class CommandResult(enum.IntEnum):
    """IR 93: what the PLC did with the last PackML command (IR 92)."""

    NONE = 0  # no command since boot
    TAKEN = 1
    REFUSED_STATE = 2  # not allowed in the PLC's current state
    REFUSED_ESTOP = 3  # the E-stop is still open


class ExcCode(enum.IntEnum):
    """Modbus exception codes the PLC replies with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3
    DEVICE_FAILURE = 4


class RejectReason(enum.IntEnum):
    """IR 12: why the last write or record was refused."""

    NONE = 0
    BAD_ADDRESS = 1  # not on a record boundary / read-only register
    BAD_COUNT = 2  # not a whole number of records
    BAD_SEQUENCE = 3  # seq neither already taken nor the next expected
    BAD_ACTUATOR = 4
    BAD_VALVES = 5  # first > last or outside the bar
    BAD_TICKS = 6  # off not after on (within 2**31 ticks)
    LATE = 7
    NOT_READY = 8
    BAD_VALUE = 9  # a config or command register out of range
    TABLE_FULL = 10  # MAX_PENDING pulses already queued: not executed


HR_RING_BASE = 200
IR_VALVE_CYCLES_BASE = 100
IR_TRIGGER_LATCH_BASE = 44

REGISTERS: tuple[Register, ...] = (
    Register("encoder_count", "ir", 0, 2, "u32", "tick", "PLC->ctrl",
             "belt encoder count, wraps at 2**32"),
    Register("belt_speed", "ir", 2, 1, "u16", "mm/s", "PLC->ctrl", "measured belt speed"),
    Register("packml_state", "ir", 3, 1, "u16", "code", "PLC->ctrl",
             "PackML state (PackMLState)"),
    Register("inputs", "ir", 4, 1, "bits", "-", "PLC->ctrl", "live inputs (InputBit)"),
    Register("faults", "ir", 5, 1, "bits", "-", "PLC->ctrl",
             "latched faults (FaultBit), cleared by Reset/Clear"),
    Register("acked_seq", "ir", 6, 1, "u16", "seq", "PLC->ctrl",
             "sequence number of the last ring record taken"),
    Register("heartbeat_echo", "ir", 7, 1, "u16", "count", "PLC->ctrl",
             "last heartbeat value seen"),
    Register("n_valves", "ir", 8, 1, "u16", "valves", "PLC->ctrl", "valves on the bar"),
    Register("n_diverters", "ir", 9, 1, "u16", "flaps", "PLC->ctrl", "diverter flaps"),
    Register("ring_slots", "ir", 10, 1, "u16", "slots", "PLC->ctrl", "pulse ring length"),
    Register("last_reject_seq", "ir", 11, 1, "u16", "seq", "PLC->ctrl",
             "seq of the last refused record (0 for a refused non-record write)"),
    Register("last_reject_reason", "ir", 12, 1, "u16", "code", "PLC->ctrl",
             "why (RejectReason)"),
    Register("boot_id", "ir", 13, 1, "u16", "-", "PLC->ctrl",
             "changes at every PLC start: ring and ack were reset"),
    Register("pulses_executed", "ir", 14, 2, "u32", "pulses", "PLC->ctrl",
             "runs completed at their off tick"),
    Register("rejected_late", "ir", 16, 2, "u32", "records", "PLC->ctrl",
             "records taken after their on tick"),
    Register("rejected_malformed", "ir", 18, 2, "u32", "records", "PLC->ctrl",
             "records (or writes) refused as malformed"),
    Register("pulses_cut", "ir", 20, 2, "u32", "pulses", "PLC->ctrl",
             "runs cut short or cancelled (watchdog, E-stop, stop, hold)"),
    Register("watchdog_trips", "ir", 22, 2, "u32", "trips", "PLC->ctrl",
             "times the heartbeat went stale"),
    Register("valves_open", "ir", 24, 16, "bits[256]", "-", "PLC->ctrl",
             "commanded valve outputs, valve v = bit v%16 of IR 24+v//16"),
    Register("diverters_on", "ir", 40, 1, "bits[16]", "-", "PLC->ctrl",
             "diverter flap k in diverting position = bit k-1"),
    Register("rejected_not_ready", "ir", 41, 2, "u32", "records", "PLC->ctrl",
             "records not executed: not in Execute/Suspended, or table full"),
    Register("trigger_seq", "ir", 43, 1, "u16", "seq", "PLC->ctrl",
             "sequence number of the last camera trigger (1..65535, then 1; 0: none yet)"),
    Register("trigger_latch", "ir", IR_TRIGGER_LATCH_BASE, TRIGGER_SLOTS * TRIGGER_WORDS,
             "latch[16]", "-", "PLC->ctrl",
             "trigger seq s latched at IR 44+3*(s%16): [seq, count_hi, count_lo] (tick)"),
    Register("last_command", "ir", 92, 1, "u16", "code", "PLC->ctrl",
             "PackMLCommand last written to HR 2"),
    Register("command_result", "ir", 93, 1, "u16", "code", "PLC->ctrl",
             "what the PLC did with it (CommandResult)"),
    Register("command_count", "ir", 94, 1, "u16", "count", "PLC->ctrl",
             "+1 per command evaluated (wraps): the controller's command was seen"),
    Register("valve_cycles", "ir", IR_VALVE_CYCLES_BASE, 2 * MAX_VALVES, "u32[256]", "cycles",
             "PLC->ctrl", "per-valve run count, valve v at IR 100+2v (only n_valves mapped)"),
    Register("heartbeat", "hr", 0, 1, "u16", "count", "ctrl->PLC",
             "incremented by the controller every heartbeat period"),
    Register("watchdog_ms", "hr", 1, 1, "u16", "ms", "both",
             "heartbeat age that de-energises all valves (10..60000)"),
    Register("packml_command", "hr", 2, 1, "u16", "code", "ctrl->PLC",
             "PackMLCommand; reads back 0 once taken"),
    Register("trigger_every_ticks", "hr", 3, 1, "u16", "tick", "both",
             "camera trigger period (0 = off, the power-on default); written on connect"),
    Register("ack_seq", "hr", 100, 1, "u16", "seq", "PLC->ctrl",
             "read-only copy of IR 6 (for FC 23 write-then-read)"),
    Register("ack_encoder", "hr", 101, 2, "u32", "tick", "PLC->ctrl",
             "read-only copy of IR 0-1"),
    Register("ack_state", "hr", 103, 1, "u16", "code", "PLC->ctrl", "read-only copy of IR 3"),
    Register("slot_result", "hr", 104, RING_SLOTS, "u16[32]", "code", "PLC->ctrl",
             "read-only SlotResult of the record last taken from slot s at HR 104+s"),
    Register("pulse_ring", "hr", HR_RING_BASE, RING_SLOTS * RECORD_WORDS, "record[32]", "-",
             "ctrl->PLC", "pulse commands, slot s at HR 200+8s (layout in the module doc)"),
)  # fmt: skip

BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}


def reg(name: str) -> Register:
    return BY_NAME[name]


IR_ENCODER = reg("encoder_count").address
IR_SPEED = reg("belt_speed").address
IR_STATE = reg("packml_state").address
IR_INPUTS = reg("inputs").address
IR_FAULTS = reg("faults").address
IR_ACKED_SEQ = reg("acked_seq").address
IR_N_VALVES = reg("n_valves").address
IR_BOOT_ID = reg("boot_id").address
IR_VALVES_OPEN = reg("valves_open").address
IR_DIVERTERS_ON = reg("diverters_on").address
IR_TRIGGER_SEQ = reg("trigger_seq").address
IR_LAST_COMMAND = reg("last_command").address
IR_COMMAND_RESULT = reg("command_result").address
IR_COMMAND_COUNT = reg("command_count").address
IR_STATUS_WORDS = reg("command_count").end  # IR 0..94: all but the cycle counts
HR_HEARTBEAT = reg("heartbeat").address
HR_WATCHDOG_MS = reg("watchdog_ms").address
HR_COMMAND = reg("packml_command").address
HR_TRIGGER_EVERY = reg("trigger_every_ticks").address
HR_ACK_BASE = reg("ack_seq").address
HR_ACK_WORDS = reg("slot_result").end - HR_ACK_BASE
HR_CONTROL_WORDS = reg("trigger_every_ticks").end
WATCHDOG_MS_RANGE = (10, 60000)
TRIGGER_EVERY_RANGE = (0, 0xFFFF)


def pack_u32(value: int) -> tuple[int, int]:
    """Unsigned 32-bit value -> (high word, low word)."""
    if not 0 <= value < 1 << 32:
        raise ValueError(f"{value} is not an unsigned 32-bit value")
    return (value >> 16) & 0xFFFF, value & 0xFFFF


def unpack_u32(high: int, low: int) -> int:
    return ((high & 0xFFFF) << 16) | (low & 0xFFFF)


def seq_add(seq: int, n: int) -> int:
    return (seq + n) % SEQ_MODULUS


def seq_diff(a: int, b: int) -> int:
    """Signed ``a - b`` over the 16-bit wrap."""
    return ((a - b + SEQ_MODULUS // 2) % SEQ_MODULUS) - SEQ_MODULUS // 2


def trigger_seq_add(seq: int, n: int) -> int:
    """The trigger seq ``n >= 0`` triggers after ``seq`` (1..65535, then 1: 0,
    "no trigger since boot", is never reused)."""
    if n <= 0:
        return seq
    return ((seq or TRIGGER_SEQ_PERIOD) - 1 + n) % TRIGGER_SEQ_PERIOD + 1


def trigger_seq_diff(a: int, b: int) -> int:
    """Signed ``a - b`` in triggers between two non-zero trigger seqs (period 65535)."""
    half = TRIGGER_SEQ_PERIOD // 2
    return ((a - b + half) % TRIGGER_SEQ_PERIOD) - half


def trigger_latch_address(seq: int) -> int:
    """First input register of the latch slot that carries trigger ``seq``."""
    return IR_TRIGGER_LATCH_BASE + (seq % TRIGGER_SLOTS) * TRIGGER_WORDS


def pack_trigger_latch(latched: Sequence[tuple[int, int]]) -> list[int]:
    """(seq, tick) per slot (``TRIGGER_SLOTS`` rows, slot order) -> IR 44..91 words."""
    if len(latched) != TRIGGER_SLOTS:
        raise ValueError(f"pack_trigger_latch: {len(latched)} slots, want {TRIGGER_SLOTS}")
    words: list[int] = []
    for seq, tick in latched:
        words += [seq & 0xFFFF, *pack_u32(tick)]
    return words


def unpack_trigger_latch(trigger_seq: int, words: Sequence[int]) -> list[tuple[int, int]]:
    """IR 43 and IR 44..91 -> the valid latches ``(seq, tick)``, oldest first: those
    in their own slot and among the last ``TRIGGER_SLOTS`` up to ``trigger_seq``."""
    if len(words) != TRIGGER_SLOTS * TRIGGER_WORDS:
        raise ValueError(f"unpack_trigger_latch: {len(words)} words")
    if trigger_seq == 0:
        return []
    out = []
    for slot in range(TRIGGER_SLOTS):
        seq, hi, lo = (int(w) & 0xFFFF for w in words[3 * slot : 3 * slot + 3])
        if seq and seq % TRIGGER_SLOTS == slot:
            age = trigger_seq_diff(trigger_seq, seq)
            if 0 <= age < TRIGGER_SLOTS:
                out.append((age, seq, unpack_u32(hi, lo)))
    return [(seq, tick) for _age, seq, tick in sorted(out, reverse=True)]


def slot_address(seq: int) -> int:
    """First holding register of the ring slot that carries ``seq``."""
    return HR_RING_BASE + (seq % RING_SLOTS) * RECORD_WORDS


@dataclasses.dataclass(frozen=True, slots=True)
class PulseRecords:
    """Decoded ring records (struct of arrays, K rows).

    seq, actuator, first_valve, last_valve: (K,) int64; on_tick, off_tick: (K,) int64
    holding unsigned 32-bit counts.
    """

    seq: np.ndarray
    actuator: np.ndarray
    first_valve: np.ndarray
    last_valve: np.ndarray
    on_tick: np.ndarray
    off_tick: np.ndarray

    def __len__(self) -> int:
        return int(self.seq.shape[0])


def pack_records(
    seq: npt.ArrayLike,
    actuator: npt.ArrayLike,
    first_valve: npt.ArrayLike,
    last_valve: npt.ArrayLike,
    on_tick: npt.ArrayLike,
    off_tick: npt.ArrayLike,
) -> list[int]:
    """K records -> K * 8 register words (ticks as uint32, high word first)."""
    cols = [
        np.asarray(c, dtype=np.int64).reshape(-1)
        for c in (seq, actuator, first_valve, last_valve, on_tick, off_tick)
    ]
    k = cols[0].shape[0]
    if any(c.shape[0] != k for c in cols):
        raise ValueError("pack_records: columns differ in length")
    for name, c, hi in zip(
        ("seq", "actuator", "first_valve", "last_valve"), cols[:4], (0xFFFF,) * 4, strict=True
    ):
        if k and (c.min() < 0 or c.max() > hi):
            raise ValueError(f"pack_records: {name} outside 0..{hi}")
    for name, c in (("on_tick", cols[4]), ("off_tick", cols[5])):
        if k and (c.min() < 0 or c.max() >= 1 << 32):
            raise ValueError(f"pack_records: {name} is not an unsigned 32-bit count")
    out = np.empty((k, RECORD_WORDS), dtype=np.int64)
    out[:, 0:4] = np.stack(cols[:4], axis=1)
    out[:, 4], out[:, 5] = cols[4] >> 16, cols[4] & 0xFFFF
    out[:, 6], out[:, 7] = cols[5] >> 16, cols[5] & 0xFFFF
    return [int(w) for w in out.reshape(-1)]


def unpack_records(words: Sequence[int]) -> PulseRecords:
    """K * 8 register words -> ``PulseRecords``."""
    if len(words) % RECORD_WORDS:
        raise ValueError(f"unpack_records: {len(words)} words is not a whole number of records")
    a = np.asarray(words, dtype=np.int64).reshape(-1, RECORD_WORDS) & 0xFFFF
    return PulseRecords(
        seq=a[:, 0].copy(),
        actuator=a[:, 1].copy(),
        first_valve=a[:, 2].copy(),
        last_valve=a[:, 3].copy(),
        on_tick=(a[:, 4] << 16) | a[:, 5],
        off_tick=(a[:, 6] << 16) | a[:, 7],
    )


def pack_bits(flags: npt.ArrayLike, n_words: int) -> list[int]:
    """(n,) bool -> ``n_words`` registers, bit i in word i//16 at bit i%16."""
    b = np.zeros(n_words * 16, dtype=np.int64)
    f = np.asarray(flags, dtype=bool).reshape(-1)
    if f.shape[0] > b.shape[0]:
        raise ValueError(f"pack_bits: {f.shape[0]} flags do not fit in {n_words} words")
    b[: f.shape[0]] = f
    weights = 1 << np.arange(16, dtype=np.int64)
    return [int(w) for w in (b.reshape(n_words, 16) * weights).sum(axis=1)]


def unpack_bits(words: Sequence[int], n: int) -> np.ndarray:
    """Registers -> (n,) bool (inverse of ``pack_bits``)."""
    w = np.asarray(words, dtype=np.int64).reshape(-1, 1)
    bits = ((w >> np.arange(16, dtype=np.int64)) & 1).reshape(-1).astype(bool)
    if n > bits.shape[0]:
        raise ValueError(f"unpack_bits: {len(words)} words hold fewer than {n} flags")
    return bits[:n]


def render_markdown() -> str:
    """``plc/REGISTERS.md``: the table above, for people and other tools."""
    doc = (sys.modules[__name__].__doc__ or "").strip()
    lines = [
        "# sortline PLC register map",
        "",
        "Generated from `plc/regmap.py` (`python -m plc.regmap > plc/REGISTERS.md`);",
        "a test keeps this file equal to the code. Device (unit) id "
        f"{DEFAULT_DEVICE_ID} unless configured.",
        "",
        "| table | address | words | type | units | direction | name | meaning |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in REGISTERS:
        addr = str(r.address) if r.words == 1 else f"{r.address}-{r.end - 1}"
        table = "input (FC 4)" if r.table == "ir" else "holding (FC 3/6/16/23)"
        lines.append(
            f"| {table} | {addr} | {r.words} | {r.type} | {r.units} | {r.access} "
            f"| `{r.name}` | {r.meaning} |"
        )
    lines += ["", "## Notes", "", doc, ""]
    enums = (PackMLState, PackMLCommand, CommandResult, InputBit, FaultBit, SlotResult,
             RejectReason)  # fmt: skip
    for enum_cls in enums:
        items = ", ".join(f"{m.name} = {int(m.value)}" for m in enum_cls)
        lines.append(f"- `{enum_cls.__name__}`: {items}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
