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
    ("heartbeat", "hr", 0, 1, "u16"),
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
        (rm.IR_VALVE_CYCLES_BASE, "valve_cycles"),
    ],
)  # fmt: skip
def test_constants_come_from_the_table(constant: int, name: str) -> None:
    assert constant == rm.reg(name).address


def test_ring_and_ack_block_sizes() -> None:
    assert rm.reg("pulse_ring").words == rm.RING_SLOTS * rm.RECORD_WORDS
    assert rm.HR_ACK_WORDS == 4 + rm.RING_SLOTS <= rm.MAX_READ_WORDS
    assert rm.RECORDS_PER_WRITE * rm.RECORD_WORDS <= rm.MAX_WRITE_WORDS
    assert rm.IR_STATUS_WORDS <= rm.MAX_READ_WORDS


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
