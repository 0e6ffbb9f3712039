"""Validation of a write into the virtual PLC's pulse ring (plc/REGISTERS.md).

A write must cover whole 8-register records starting on a slot boundary.
Each record's ``seq`` must live in its slot (``seq % RING_SLOTS``) and be
either one already taken (a retry: ignored) or the next expected one.
A new record needs a valid actuator, valve run and tick span. Any fault
refuses the whole write (nothing is applied).
"""

from __future__ import annotations

from collections.abc import Sequence

from core.ticks import HALF_RANGE, TICK_MODULUS
from plc import regmap as rm
from plc.regmap import ExcCode, RejectReason

Row = tuple[int, int, int, int, int, int]  # seq, actuator, first, last, on, off


class RecordError(ValueError):
    """A refused ring write: ``seq`` of the first bad record (0 if none)."""

    def __init__(self, seq: int, reason: RejectReason, exc: ExcCode) -> None:
        super().__init__(f"ring write refused: seq {seq}: {reason.name}")
        self.seq, self.reason, self.exc = seq, reason, exc


def _check_content(row: Row, n_valves: int, n_diverters: int) -> RejectReason | None:
    _seq, act, first, last, on, off = row
    if act > n_diverters:
        return RejectReason.BAD_ACTUATOR
    if act == 0 and not 0 <= first <= last < n_valves:
        return RejectReason.BAD_VALVES
    if act > 0 and (first, last) != (0, 0):
        return RejectReason.BAD_VALVES
    span = (off - on) % TICK_MODULUS
    if span == 0 or span >= HALF_RANGE:
        return RejectReason.BAD_TICKS
    return None


def check_ring_write(
    address: int, values: Sequence[int], acked_seq: int, n_valves: int, n_diverters: int
) -> list[Row]:
    """The new records of a valid ring write, in order; ``RecordError`` otherwise."""
    offset = address - rm.HR_RING_BASE
    if offset % rm.RECORD_WORDS:
        raise RecordError(0, RejectReason.BAD_ADDRESS, ExcCode.ILLEGAL_ADDRESS)
    if len(values) % rm.RECORD_WORDS:
        raise RecordError(0, RejectReason.BAD_COUNT, ExcCode.ILLEGAL_VALUE)
    recs = rm.unpack_records(values)
    first_slot = offset // rm.RECORD_WORDS
    expected = rm.seq_add(acked_seq, 1)
    new: list[Row] = []
    for i in range(len(recs)):
        row: Row = (
            int(recs.seq[i]),
            int(recs.actuator[i]),
            int(recs.first_valve[i]),
            int(recs.last_valve[i]),
            int(recs.on_tick[i]),
            int(recs.off_tick[i]),
        )
        seq = row[0]
        if seq % rm.RING_SLOTS != (first_slot + i) % rm.RING_SLOTS:
            raise RecordError(seq, RejectReason.BAD_SEQUENCE, ExcCode.ILLEGAL_VALUE)
        age = rm.seq_diff(acked_seq, seq)
        if 0 <= age < rm.RING_SLOTS and not new:
            continue  # already taken: a retried write
        if seq != expected:
            raise RecordError(seq, RejectReason.BAD_SEQUENCE, ExcCode.ILLEGAL_VALUE)
        reason = _check_content(row, n_valves, n_diverters)
        if reason is not None:
            raise RecordError(seq, reason, ExcCode.ILLEGAL_VALUE)
        new.append(row)
        expected = rm.seq_add(expected, 1)
    return new
