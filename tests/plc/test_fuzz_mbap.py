"""Raw Modbus TCP frames, fuzzed, against the virtual PLC over a real socket.

Each example starts a fresh PLC (stepped clock: the watchdog moves only when
the test advances the belt) and sends it a short run of frames: well-formed
requests with any function code, address, count and value (ring records with
bad seq, actuator, valves or ticks; watchdog, trigger and PackML values out of
range) and broken ones (truncated, wrong MBAP length or protocol id, other
unit ids, garbage). After each frame: the PLC still answers a status read; a
reply, when there is one, is a well-formed response or exception for the
request; valves are never open outside Execute/Suspended; a refused write
changed nothing and, once it reached the PLC's validation, was counted in
IR 18-19 with a reject reason in IR 12.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plc import regmap as rm
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

N_VALVES, N_DIVERTERS = 16, 2
START_TICK = 10_000
_RING = rm.reg("pulse_ring")
_CYCLES = rm.reg("valve_cycles")
_IR_BLOCKS = ((0, rm.IR_STATUS_WORDS), (_CYCLES.address, _CYCLES.address + 2 * N_VALVES))
_HR_READ_BLOCKS = ((0, rm.HR_CONTROL_WORDS), (rm.HR_ACK_BASE, 136), (_RING.address, _RING.end))
_HR_WRITE_BLOCKS = ((0, rm.HR_CONTROL_WORDS), (_RING.address, _RING.end))
_RUNNING = (rm.PackMLState.EXECUTE, rm.PackMLState.SUSPENDED)


@dataclass(frozen=True)
class Frame:
    """One request on the wire; ``clean``: a well-formed MBAP frame for unit 1."""

    tid: int
    pdu: bytes
    wire: bytes
    clean: bool


def _inside(address: int, count: int, blocks: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= address and address + count <= hi for lo, hi in blocks)


def expected_codes(pdu: bytes) -> tuple[bool, frozenset[int]]:
    """For a clean request: (may the reply be normal, exception codes allowed)."""
    fc = pdu[0]
    bad_value, bad_addr = frozenset({3}), frozenset({2})
    if fc in (3, 4) and len(pdu) == 5:
        address, count = struct.unpack(">HH", pdu[1:])
        if not 1 <= count <= 125:
            return False, bad_value
        return _inside(address, count, _IR_BLOCKS if fc == 4 else _HR_READ_BLOCKS), bad_addr
    if fc == 6 and len(pdu) == 5:
        address = struct.unpack(">H", pdu[1:3])[0]
        if not _inside(address, 1, _HR_WRITE_BLOCKS):
            return False, bad_addr
        return True, frozenset({2, 3})  # the PLC's own validation
    if fc == 16 and len(pdu) >= 6:
        address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= 123 or nbytes != 2 * count or len(pdu) != 6 + nbytes:
            return False, bad_value
        if not _inside(address, count, _HR_WRITE_BLOCKS):
            return False, bad_addr
        return True, frozenset({2, 3})
    if fc == 23 and len(pdu) >= 10:
        raddr, rcount, waddr, wcount, nbytes = struct.unpack(">HHHHB", pdu[1:10])
        if not (1 <= rcount <= 125 and 1 <= wcount <= 121) or nbytes != 2 * wcount:
            return False, bad_value
        if len(pdu) != 10 + nbytes:
            return False, bad_value
        if not _inside(waddr, wcount, _HR_WRITE_BLOCKS):
            return False, bad_addr
        if not _inside(raddr, rcount, _HR_READ_BLOCKS):
            return False, frozenset({2, 3})
        return True, frozenset({2, 3})
    if fc in (3, 4, 6, 16, 23):
        return False, bad_value  # a served function with a broken body
    if fc == 0x2B:  # device identification (pymodbus: empty; read code 0 -> 04)
        return True, frozenset({1, 2, 3, 4})
    return False, frozenset({1})


def reaches_core_write(pdu: bytes) -> bool:
    """A clean write that pymodbus passes to the PLC's validation."""
    return pdu[0] in (6, 16, 23) and expected_codes(pdu)[0]


# ---- strategies -------------------------------------------------------------
addresses = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 42, 94, 95, 99, 100, 101, 135, 136, 199, 200, 201,
                     207, 208, 448, 455, 456, 611, 612, 65535]),
    st.integers(0, 0xFFFF),
)  # fmt: skip
counts = st.one_of(st.sampled_from([0, 1, 2, 8, 95, 120, 123, 124, 125, 126, 200, 0xFFFF]),
                   st.integers(0, 130))  # fmt: skip
words = st.one_of(st.sampled_from([0, 1, 9, 10, 60000, 60001, 0xFFFF]), st.integers(0, 0xFFFF))


@st.composite
def records(draw: st.DrawFn, acked_seq: int, tick: int) -> tuple[int, list[int]]:
    """(slot address, words) of 1..15 ring records, mostly plausible."""
    n = draw(st.integers(1, rm.RECORDS_PER_WRITE))
    seq0 = draw(st.one_of(
        st.just(rm.seq_add(acked_seq, 1)), st.just(acked_seq), st.just(rm.seq_add(acked_seq, 2)),
        st.integers(0, 0xFFFF),
    ))  # fmt: skip
    seqs = [rm.seq_add(seq0, i) for i in range(n)]
    if draw(st.integers(0, 5)) == 0:
        seqs[draw(st.integers(0, n - 1))] = draw(st.integers(0, 0xFFFF))
    out: list[int] = []
    for seq in seqs:
        act = draw(st.sampled_from([0, 0, 0, 1, 2, 3, 17, 0xFFFF]))
        if act == 0:
            first = draw(st.sampled_from([0, 3, 15, 16, 255, 0xFFFF]))
            last = draw(st.sampled_from([first, first + 1, 15, 16, 0]))
        else:
            first, last = draw(st.sampled_from([(0, 0), (0, 0), (1, 1), (0, 5)]))
        on = draw(
            st.one_of(st.integers(-50, 3000).map(lambda d: tick + d), st.integers(0, 2**32 - 1))
        )
        span = draw(st.sampled_from([1, 100, 500, 0, 2**31, 2**32 - 1]))
        off = (on + span) % 2**32
        out += [
            seq,
            act,
            first & 0xFFFF,
            last & 0xFFFF,
            *rm.pack_u32(on % 2**32),
            *rm.pack_u32(off),
        ]
    address = draw(st.one_of(st.just(rm.slot_address(seq0)), addresses))
    return address, out


@st.composite
def pdus(draw: st.DrawFn, acked_seq: int, tick: int) -> bytes:
    kind = draw(st.sampled_from(
        ["read", "read", "single", "multi", "ring16", "ring23", "ring23", "control", "rw23",
         "bits", "mei", "unknown"]
    ))  # fmt: skip
    if kind == "read":
        fc = draw(st.sampled_from([3, 4]))
        return struct.pack(">BHH", fc, draw(addresses), draw(counts))
    if kind == "single":
        return struct.pack(">BHH", 6, draw(addresses), draw(words))
    if kind == "multi":
        values = draw(st.lists(words, max_size=126))
        count = draw(st.one_of(st.just(len(values)), counts))
        nbytes = draw(st.one_of(st.just(2 * len(values)), st.integers(0, 255)))
        head = struct.pack(">BHHB", 16, draw(addresses), count & 0xFFFF, nbytes & 0xFF)
        return head + b"".join(struct.pack(">H", v) for v in values)
    if kind in ("ring16", "ring23"):
        address, values = draw(records(acked_seq, tick))
        if kind == "ring16":
            return struct.pack(f">BHHB{len(values)}H", 16, address, len(values), 2 * len(values),
                               *values)  # fmt: skip
        raddr = draw(st.one_of(st.just(rm.HR_ACK_BASE), addresses))
        rcount = draw(st.one_of(st.just(rm.HR_ACK_WORDS), counts))
        return struct.pack(f">BHHHHB{len(values)}H", 23, raddr, rcount & 0xFFFF, address,
                           len(values), 2 * len(values), *values)  # fmt: skip
    if kind == "control":
        address = draw(st.integers(0, rm.HR_CONTROL_WORDS - 1))
        n = draw(st.integers(1, rm.HR_CONTROL_WORDS - address))
        values = draw(st.lists(
            st.one_of(words, st.integers(0, 12)), min_size=n, max_size=n
        ))  # fmt: skip
        if n == 1 and draw(st.booleans()):
            return struct.pack(">BHH", 6, address, values[0])
        return struct.pack(f">BHHB{n}H", 16, address, n, 2 * n, *values)
    if kind == "rw23":
        values = draw(st.lists(words, min_size=0, max_size=8))
        return struct.pack(f">BHHHHB{len(values)}H", 23, draw(addresses), draw(counts),
                           draw(addresses), len(values), 2 * len(values), *values)  # fmt: skip
    if kind == "bits":
        fc = draw(st.sampled_from([1, 2, 5, 15]))
        return (
            bytes([fc])
            + struct.pack(">HH", draw(addresses), draw(counts))
            + draw(st.binary(max_size=4))
        )
    if kind == "mei":
        return bytes([0x2B, 0x0E, draw(st.integers(0, 5)), draw(st.integers(0, 255))])
    fc = draw(st.integers(1, 127).filter(lambda f: f not in (3, 4, 6, 16, 23)))
    return bytes([fc]) + draw(st.binary(max_size=12))


@st.composite
def frames(draw: st.DrawFn, acked_seq: int, tick: int) -> Frame:
    tid = draw(st.integers(0, 0xFFFF))
    pdu = draw(pdus(acked_seq, tick))
    fault = draw(st.sampled_from(
        ["none"] * 6 + ["truncated", "length", "protocol", "unit", "garbage", "trailing"]
    ))  # fmt: skip
    unit, proto, length = 1, 0, len(pdu) + 1
    if fault == "unit":
        unit = draw(st.sampled_from([0, 2, 247, 255]))
    elif fault == "protocol":
        proto = draw(st.integers(1, 0xFFFF))
    elif fault == "length":
        length = draw(st.integers(0, 300).filter(lambda n: n != len(pdu) + 1))
    wire = struct.pack(">HHHB", tid, proto, length, unit) + pdu
    if fault == "truncated":
        wire = wire[: draw(st.integers(1, len(wire) - 1))]
    elif fault == "garbage":
        wire = draw(st.binary(min_size=1, max_size=64))
    elif fault == "trailing":
        wire += draw(st.binary(min_size=1, max_size=16))
    return Frame(tid, pdu, wire, fault == "none")


# ---- wire helpers ------------------------------------------------------------
def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_frame(s: socket.socket) -> tuple[int, int, int, bytes]:
    """(tid, protocol, unit, pdu) of one MBAP reply."""
    tid, proto, length, unit = struct.unpack(">HHHB", recv_exact(s, 7))
    assert 2 <= length <= 254, f"reply MBAP length {length}"
    return tid, proto, unit, recv_exact(s, length - 1)


def check_reply_shape(pdu: bytes, req_fc: int) -> None:
    """Any reply: a normal response to ``req_fc`` or a two-byte exception."""
    if pdu[0] & 0x80:
        assert len(pdu) == 2 and pdu[1] in (1, 2, 3, 4, 0x0B), pdu.hex()
        return
    assert pdu[0] in (3, 4, 6, 16, 23, 0x2B), f"normal reply to a function not served: {pdu.hex()}"
    if pdu[0] == 0x2B:
        assert len(pdu) >= 7 and pdu[1] == 0x0E, pdu.hex()
    elif pdu[0] in (3, 4, 23):
        assert len(pdu) == 2 + pdu[1] and pdu[1] % 2 == 0, pdu.hex()
    else:
        assert len(pdu) == 5, pdu.hex()


def check_clean_reply(frame: Frame, reply: tuple[int, int, int, bytes]) -> None:
    tid, proto, unit, pdu = reply
    req = frame.pdu
    assert (tid, proto, unit) == (frame.tid, 0, 1)
    normal_ok, codes = expected_codes(req)
    if pdu[0] == req[0] | 0x80:
        assert len(pdu) == 2 and pdu[1] in codes, f"{req.hex()} -> {pdu.hex()}"
        return
    assert normal_ok and pdu[0] == req[0], f"{req.hex()} -> {pdu.hex()}"
    if req[0] in (3, 4, 23):  # the read count is at the same place
        count = struct.unpack(">H", req[3:5])[0]
        assert pdu[1] == 2 * count and len(pdu) == 2 + 2 * count
    elif req[0] == 6:
        assert pdu == req
    elif req[0] == 16:
        assert pdu == req[:5]


def exchange(port: int, frame: Frame) -> list[tuple[int, int, int, bytes]]:
    """Send ``frame``; the replies read (a clean frame must get exactly one)."""
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        s.sendall(frame.wire)
        if frame.clean:
            replies.append(recv_frame(s))
            return replies
        s.settimeout(0.03)  # Modbus may stay silent here: wait a little, then hang up
        with contextlib.suppress(TimeoutError, ConnectionError):
            while True:
                replies.append(recv_frame(s))
    return replies


def status(port: int) -> list[int]:
    """IR 0..94 over a fresh connection: the server still answers."""
    pdu = struct.pack(">BHH", 4, 0, rm.IR_STATUS_WORDS)
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
        s.sendall(struct.pack(">HHHB", 0x5A5A, 0, len(pdu) + 1, 1) + pdu)
        tid, proto, unit, reply = recv_frame(s)
    assert (tid, proto, unit, reply[:2]) == (0x5A5A, 0, 1, bytes([4, 2 * rm.IR_STATUS_WORDS]))
    return list(struct.unpack(f">{rm.IR_STATUS_WORDS}H", reply[2:]))


def plc_state(core: PlcCore) -> tuple[object, ...]:
    """Everything a write may change."""
    c = core.counters
    return (
        core.pending(), core.acked_seq, core.command_count, core.last_command,
        core.read_holding(0, rm.HR_CONTROL_WORDS), core.read_holding(_RING.address, 125),
        core.read_holding(_RING.address + 125, _RING.words - 125),
        core.read_holding(rm.HR_ACK_BASE + 4, rm.RING_SLOTS),
        c["executed"], c["late"], c["not_ready"], c["cut"], core.state,
        core.faults & ~rm.FaultBit.MALFORMED,
    )  # fmt: skip


def check_invariants(core: PlcCore, words: list[int]) -> None:
    state = words[rm.reg("packml_state").address]
    outputs = words[rm.reg("valves_open").address : rm.IR_DIVERTERS_ON + 1]
    if state not in _RUNNING:
        assert not any(outputs), f"outputs {outputs} in state {state}"
        assert not core.valves_open().any() and not core.diverters_on().any()
    malformed = rm.unpack_u32(*words[18:20])
    assert malformed == core.counters["malformed"]
    if malformed:
        assert words[rm.reg("last_reject_reason").address] != rm.RejectReason.NONE


# ---- the test ----------------------------------------------------------------
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_fuzzed_frames_never_break_the_plc(data: st.DataObject) -> None:
    core = PlcCore(N_VALVES, n_diverters=N_DIVERTERS, watchdog_ms=300)
    tick, now_s = START_TICK, 0.0
    core.advance(tick, 2500.0, now_s)
    with VirtualPlcServer(core) as server:
        for _ in range(data.draw(st.integers(1, 5), label="frames")):
            frame = data.draw(frames(core.acked_seq, tick))
            before = plc_state(core)
            malformed0 = core.counters["malformed"]
            t0 = time.monotonic()
            replies = exchange(server.port, frame)
            for r in replies:
                check_reply_shape(r[3], frame.pdu[0])
            words = status(server.port)
            assert time.monotonic() - t0 < 3.0
            check_invariants(core, words)
            if frame.clean:
                check_clean_reply(frame, replies[0])
                refused = bool(replies[0][3][0] & 0x80)
                counted = core.counters["malformed"] - malformed0
                if refused and frame.pdu[0] in (6, 16, 23):
                    assert plc_state(core) == before, f"refused write changed the PLC: {frame}"
                if reaches_core_write(frame.pdu):
                    assert counted == int(refused), frame
                else:
                    assert counted == 0, frame
                if frame.pdu[0] not in (6, 16, 23):
                    assert plc_state(core) == before
            step = data.draw(st.sampled_from([0, 1, 50, 400, 3000]), label="ticks")
            speed = data.draw(st.sampled_from([2500.0, 2500.0, 0.0]), label="speed")
            tick, now_s = tick + step, now_s + 0.01
            core.advance(tick, speed, now_s)
            check_invariants(core, status(server.port))


@pytest.mark.parametrize(
    "pdu",
    [
        b"\x07",  # read exception status (serial line)
        b"\x08\x00\x01\x00\x00",  # diagnostics: restart communications
        b"\x08\x00\x04\x00\x00",  # diagnostics: force listen-only mode
        b"\x0b",  # get comm event counter
        b"\x0c",  # get comm event log
        b"\x11",  # report server id
        b"\x14\x07\x06\x00\x01\x00\x00\x00\x01",  # read file record
        struct.pack(">BHHH", 0x16, 0, 0x0000, 0x0004),  # mask write: HR 0 := 4 (Start)
        struct.pack(">BHHH", 0x16, _RING.address, 0x0000, 0xFFFF),  # ... into the ring
        struct.pack(">BH", 0x18, 0),  # read FIFO queue
    ],
)
def test_functions_not_offered_get_exception_01_and_change_nothing(pdu: bytes) -> None:
    """pymodbus decodes and answers these; the PLC offers none of them: each gets
    its exception 01 (illegal function) and reaches neither registers nor state,
    and the server answers normally afterwards."""
    core = PlcCore(N_VALVES, n_diverters=N_DIVERTERS, watchdog_ms=300)
    core.advance(START_TICK, 2500.0, 0.0)
    with VirtualPlcServer(core) as server:
        before = plc_state(core)
        wire = struct.pack(">HHHB", 0x1234, 0, len(pdu) + 1, 1) + pdu
        (reply,) = exchange(server.port, Frame(0x1234, pdu, wire, clean=True))
        assert reply[:3] == (0x1234, 0, 1) and reply[3] == bytes([pdu[0] | 0x80, 1]), reply
        assert plc_state(core) == before
        status(server.port)  # still serving
