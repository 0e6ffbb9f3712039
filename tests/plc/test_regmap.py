"""The register map: one table, the fixed addresses, pure pack/unpack round trips."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plc import regmap as rm

FIXED = [
    ("encoder_count", "ir", 0, 2, "u32"),
    ("belt_speed", "ir", 2, 1, "u16"),
    ("packml_state", "ir", 3, 1, "u16"),
    ("rejected_not_ready", "ir", 41, 2, "u32"),
    ("trigger_seq", "ir", 43, 1, "u16"),
    ("trigger_latch", "ir", 44, 48, "latch[16]"),
    ("last_command", "ir", 92, 1, "u16"),
    ("command_result", "ir", 93, 1, "u16"),
    ("command_count", "ir", 94, 1, "u16"),
    ("heartbeat", "hr", 0, 1, "u16"),
    ("trigger_every_ticks", "hr", 3, 1, "u16"),
]


def test_registers_md_is_rendered_from_the_table() -> None:
    path = Path(rm.__file__).with_name("REGISTERS.md")
    assert path.read_text(encoding="utf-8") == rm.render_markdown(), (
        "plc/REGISTERS.md is stale: python -m plc.regmap > plc/REGISTERS.md"
    )


@pytest.mark.parametrize(("name", "table", "address", "words", "type_"), FIXED)
def test_fixed_addresses(name: str, table: str, address: int, words: int, type_: str) -> None:
    r = rm.reg(name)
    assert (r.table, r.address, r.words, r.type) == (table, address, words, type_)


@pytest.mark.parametrize("table", ["ir", "hr"])
def test_no_two_registers_overlap(table: str) -> None:
    rows = sorted((r for r in rm.REGISTERS if r.table == table), key=lambda r: r.address)
    for a, b in itertools.pairwise(rows):
        assert a.end <= b.address, (a.name, b.name)


@pytest.mark.parametrize(
    ("constant", "name"),
    [
        (rm.IR_ENCODER, "encoder_count"), (rm.IR_SPEED, "belt_speed"),
        (rm.IR_STATE, "packml_state"), (rm.IR_ACKED_SEQ, "acked_seq"),
        (rm.IR_BOOT_ID, "boot_id"), (rm.HR_HEARTBEAT, "heartbeat"),
        (rm.HR_WATCHDOG_MS, "watchdog_ms"), (rm.HR_COMMAND, "packml_command"),
        (rm.HR_ACK_BASE, "ack_seq"), (rm.HR_RING_BASE, "pulse_ring"),
        (rm.IR_VALVE_CYCLES_BASE, "valve_cycles"), (rm.IR_TRIGGER_SEQ, "trigger_seq"),
        (rm.IR_TRIGGER_LATCH_BASE, "trigger_latch"), (rm.IR_LAST_COMMAND, "last_command"),
        (rm.IR_COMMAND_RESULT, "command_result"), (rm.IR_COMMAND_COUNT, "command_count"),
        (rm.HR_TRIGGER_EVERY, "trigger_every_ticks"),
    ],
)  # fmt: skip
def test_constants_come_from_the_table(constant: int, name: str) -> None:
    assert constant == rm.reg(name).address


def test_ring_and_ack_block_sizes() -> None:
    assert rm.reg("pulse_ring").words == rm.RING_SLOTS * rm.RECORD_WORDS
    assert rm.HR_ACK_WORDS == 4 + rm.RING_SLOTS <= rm.MAX_READ_WORDS
    assert rm.RECORDS_PER_WRITE * rm.RECORD_WORDS <= rm.MAX_WRITE_WORDS
    assert rm.IR_STATUS_WORDS == 95 <= rm.MAX_READ_WORDS  # IR 0..94 in one FC 4 read
    assert rm.HR_CONTROL_WORDS == 4


@pytest.mark.parametrize(
    ("state", "code"),
    [("STOPPED", 2), ("STARTING", 3), ("IDLE", 4), ("SUSPENDED", 5), ("EXECUTE", 6),
     ("STOPPING", 7), ("ABORTING", 8), ("ABORTED", 9), ("HELD", 11)],
)  # fmt: skip
def test_packml_codes(state: str, code: int) -> None:
    assert rm.PackMLState[state] == code


@pytest.mark.parametrize(
    ("value", "words"),
    [(0, (0, 0)), (1, (0, 1)), (0xFFFF, (0, 0xFFFF)), (0x10000, (1, 0)),
     (0x12345678, (0x1234, 0x5678)), (0xFFFFFFFF, (0xFFFF, 0xFFFF))],
)  # fmt: skip
def test_u32_high_word_first(value: int, words: tuple[int, int]) -> None:
    assert rm.pack_u32(value) == words
    assert rm.unpack_u32(*words) == value


@pytest.mark.parametrize("bad", [-1, 1 << 32])
def test_u32_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        rm.pack_u32(bad)


@given(st.integers(0, (1 << 32) - 1))
def test_u32_round_trip(value: int) -> None:
    assert rm.unpack_u32(*rm.pack_u32(value)) == value


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, (1 << 32) - 1)


@given(st.lists(st.tuples(u16, u16, u16, u16, u32, u32), max_size=20))
def test_records_round_trip(rows: list[tuple[int, ...]]) -> None:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
    words = rm.pack_records(*cols)
    assert len(words) == rm.RECORD_WORDS * len(rows)
    assert all(0 <= w <= 0xFFFF for w in words)
    back = rm.unpack_records(words)
    got = list(zip(back.seq.tolist(), back.actuator.tolist(), back.first_valve.tolist(),
                   back.last_valve.tolist(), back.on_tick.tolist(), back.off_tick.tolist(),
                   strict=True))  # fmt: skip
    assert got == rows


def test_record_layout() -> None:
    words = rm.pack_records([7], [0], [3], [5], [0x00010002], [0xFFFF0000])
    assert words == [7, 0, 3, 5, 1, 2, 0xFFFF, 0]


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"seq": [1 << 16]}, "seq"), ({"on_tick": [1 << 32]}, "on_tick"),
     ({"first_valve": [-1]}, "first_valve"), ({"seq": [1, 2]}, "length")],
)  # fmt: skip
def test_pack_records_rejects_bad_values(kw: dict[str, list[int]], match: str) -> None:
    cols = {"seq": [1], "actuator": [0], "first_valve": [0], "last_valve": [0],
            "on_tick": [1], "off_tick": [2]}  # fmt: skip
    cols.update(kw)
    with pytest.raises(ValueError, match=match):
        rm.pack_records(**cols)


def test_unpack_records_needs_whole_records() -> None:
    with pytest.raises(ValueError, match="whole number"):
        rm.unpack_records([0] * 7)


@given(st.lists(st.booleans(), max_size=256))
def test_bits_round_trip(flags: list[bool]) -> None:
    words = rm.pack_bits(flags, 16)
    assert np.array_equal(rm.unpack_bits(words, len(flags)), np.array(flags, dtype=bool))


def test_bit_order() -> None:
    assert rm.pack_bits([True] + [False] * 16 + [True], 2) == [1, 2]


@pytest.mark.parametrize(
    ("a", "b", "diff"), [(5, 3, 2), (3, 5, -2), (0, 0xFFFF, 1), (0xFFFF, 0, -1)]
)
def test_seq_wrap(a: int, b: int, diff: int) -> None:
    assert rm.seq_diff(a, b) == diff
    assert rm.seq_add(b, diff) == a


def test_slot_address() -> None:
    assert rm.slot_address(0) == rm.HR_RING_BASE
    assert rm.slot_address(rm.RING_SLOTS + 3) == rm.HR_RING_BASE + 3 * rm.RECORD_WORDS


@pytest.mark.parametrize(
    ("seq", "n", "after"),
    [(0, 0, 0), (0, 1, 1), (1, 1, 2), (65534, 1, 65535), (65535, 1, 1), (65535, 2, 2),
     (0, 65535, 65535), (0, 65536, 1), (7, 65535, 7)],
)  # fmt: skip
def test_trigger_seq_skips_zero(seq: int, n: int, after: int) -> None:
    assert rm.trigger_seq_add(seq, n) == after
    if seq and n < rm.TRIGGER_SEQ_PERIOD // 2:
        assert rm.trigger_seq_diff(after, seq) == n


def test_trigger_latch_address() -> None:
    assert rm.trigger_latch_address(1) == 47
    assert rm.trigger_latch_address(16) == rm.trigger_latch_address(32) == 44


LATCH_CASES = {
    # name: (trigger_seq, {slot: (seq, tick)}, valid latches oldest first)
    "none since boot": (0, {}, []),
    "first two": (2, {1: (1, 100), 2: (2, 200)}, [(1, 100), (2, 200)]),
    "seq in the wrong slot": (3, {3: (3, 300), 4: (3, 300)}, [(3, 300)]),
    "older than the ring": (40, {8: (40, 4000), 7: (23, 2300)}, [(40, 4000)]),
    "newer than trigger_seq": (5, {5: (5, 500), 6: (6, 600)}, [(5, 500)]),
    "across the seq wrap": (2, {15: (65535, 9), 1: (1, 10), 2: (2, 11), 14: (65534, 8)},
                            [(65534, 8), (65535, 9), (1, 10), (2, 11)]),
    "count across 2**32": (2, {1: (1, (1 << 32) - 1), 2: (2, 5)}, [(1, (1 << 32) - 1), (2, 5)]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LATCH_CASES))
def test_unpack_trigger_latch(name: str) -> None:
    trigger_seq, slots, want = LATCH_CASES[name]
    rows = [slots.get(i, (0, 0)) for i in range(rm.TRIGGER_SLOTS)]
    words = rm.pack_trigger_latch(rows)
    assert len(words) == rm.reg("trigger_latch").words
    assert words[3 * 1 : 3 * 1 + 3] == [rows[1][0], *rm.pack_u32(rows[1][1])]
    assert rm.unpack_trigger_latch(trigger_seq, words) == want
