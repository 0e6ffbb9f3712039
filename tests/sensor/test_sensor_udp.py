"""The sensor bar's UDP stream: the plant's sender against the controller's
reader, over real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import struct
import zlib

import numpy as np
import pytest

from core.sensor_rows import SensorRows
from sim.plant.induction_udp import RowSender
from sortline.sensor.packet import (
    HEADER,
    PacketError,
    max_rows_per_datagram,
    pack_rows,
    parse_packet,
)
from sortline.sensor.reader import SensorReader
from sortline.sensor.ring import RowRing
from tests.sortline.conftest import until

C = 8


def _rows(n: int, t0: int = 1000, step: int = 50, seed: int = 0) -> SensorRows:
    rng = np.random.default_rng(seed)
    ticks = t0 + step * np.arange(n, dtype=np.int64)
    return SensorRows(ticks, rng.normal(0, 5, (n, C)), rng.normal(0, 5, (n, C)))


def test_sender_and_parser_agree() -> None:
    rows = _rows(7)
    sender = RowSender("127.0.0.1", 9, C, rows_per_packet=3)
    pkts = sender.packets(rows)
    sender.close()
    assert [len(p) for p in pkts] == [HEADER.size + n * (4 + 8 * C) + 4 for n in (3, 3, 1)]
    got = [parse_packet(p, C) for p in pkts]
    assert [g.sequence for g in got] == [0, 1, 2]
    assert np.array_equal(np.concatenate([g.tick_u32 for g in got]), rows.tick)
    assert np.array_equal(np.concatenate([g.in_phase for g in got]), rows.in_phase)
    assert pkts[0] == pack_rows(0, rows.tick[:3], rows.in_phase[:3], rows.quadrature[:3])


def test_an_unfragmented_datagram() -> None:
    n = max_rows_per_datagram(32)
    assert n == 5 and HEADER.size + n * (4 + 8 * 32) + 4 <= 1472


def _good() -> bytes:
    r = _rows(2)
    return pack_rows(5, r.tick, r.in_phase, r.quadrature)


def _recrc(body: bytes) -> bytes:
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]))


def _bad_cases() -> list[tuple[str, bytes]]:
    good = _good()
    nan = _rows(2)
    nan_i = np.array(nan.in_phase)
    nan_i[1, 3] = np.nan
    unordered = _recrc(good[:20] + good[20 + 4 + 8 * C : 20 + 4 + 8 * C + 4] + good[24:])
    return [
        ("short", good[:10]),
        ("magic", b"XXXX" + good[4:]),
        ("version", _recrc(good[:4] + struct.pack("<H", 3) + good[6:])),
        ("length", good[:-5] + good[-4:]),
        ("crc", good[:30] + bytes([good[30] ^ 0xFF]) + good[31:]),
        ("channels", pack_rows(1, np.array([5]), np.zeros((1, C + 1)), np.zeros((1, C + 1)))),
        ("tick", unordered),
        ("value", pack_rows(1, nan.tick, nan_i, nan.quadrature)),
    ]


@pytest.mark.parametrize(("reason", "data"), _bad_cases())
def test_refused_with_a_reason(reason: str, data: bytes) -> None:
    with pytest.raises(PacketError) as exc:
        parse_packet(data, C)
    assert exc.value.reason == reason and str(exc.value)


def test_reader_over_udp() -> None:
    """Rows arrive in the ring; garbled datagrams are refused and counted;
    a skipped sequence is a gap; silence is a stall."""
    ring = RowRing(C, capacity=1024, guard=64)
    with SensorReader(ring, every_ticks=50, stall_ms=150.0) as reader:
        assert reader.stalled()
        sender = RowSender("127.0.0.1", reader.port, C, rows_per_packet=4)
        rows = _rows(40)
        sender.send(rows[:20])
        assert until(lambda: ring.count == 20, 3.0)
        sender.sequence += 2  # two datagrams lost on the way
        sender.send(rows[28:])  # ... carrying rows 20-27
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _, data in _bad_cases():
            raw.sendto(data, ("127.0.0.1", reader.port))
        raw.sendto(sender.packets(rows[:4])[0][:-1], ("127.0.0.1", reader.port))
        assert until(lambda: ring.count == 32 and sum(reader.refused.values()) == 9, 3.0)
        assert reader.packets_lost == 2 and reader.rows_missing == 8
        assert reader.refused["length"] == 2 and reader.last_refusal
        got = ring.rows()
        assert np.array_equal(got.tick, np.concatenate([rows.tick[:20], rows.tick[28:]]))
        assert not reader.stalled() and reader.problem() == ""
        assert until(lambda: reader.stalled(), 2.0)
        assert "no valid packet" in reader.problem()
        raw.close()
        sender.close()


def test_ring_tracks_the_baseline() -> None:
    """A drifting baseline is followed on quiet rows and subtracted; a piece
    passing (far above the gate) is kept as signal, not learnt."""
    ring = RowRing(1, capacity=4096, guard=64, gate=25.0, alpha=0.05)
    n = 3000
    ticks = 50 * np.arange(n)
    drift = 40.0 * np.sin(np.arange(n) / 400.0)[:, None]
    piece = np.zeros((n, 1))
    piece[2000:2010] = 300.0
    vals = (drift + piece + 100.0).astype(np.float32)
    ring.append(ticks.astype(np.uint32), vals, vals)
    got = ring.rows()
    assert got.tick[-1] == ticks[-1]
    rest = np.r_[200:2000, 2010:n]
    assert np.abs(got.in_phase[rest, 0]).max() < 5.0  # drift taken out
    assert got.in_phase[2000:2010, 0].min() > 250.0  # signal kept


def test_ring_unwraps_the_encoder_count() -> None:
    ring = RowRing(1, capacity=64, guard=4)
    ticks = (np.arange(10, dtype=np.int64) * 50 + (1 << 32) - 200) % (1 << 32)
    ring.append(ticks.astype(np.uint32), np.zeros((10, 1)), np.zeros((10, 1)))
    got = ring.rows()
    assert np.all(np.diff(got.tick) == 50) and got.tick[-1] > 1 << 32
    assert ring.unwrap(100) == (1 << 32) + 100


HZ2 = (5000.0, 50000.0)


def _rows2(n: int) -> SensorRows:
    """Rows of a two-frequency bar: (n, 2 x C) frequency-major."""
    rng = np.random.default_rng(7)
    ticks = 1000 + 50 * np.arange(n, dtype=np.int64)
    return SensorRows(ticks, rng.normal(0, 5, (n, 2 * C)), rng.normal(0, 5, (n, 2 * C)))


def test_version_2_sender_and_parser_agree() -> None:
    """The plant's sender (written from the table) and the reader's parser agree on
    version 2: frequencies stated in the header, per row each frequency's I then Q."""
    rows = _rows2(5)
    sender = RowSender("127.0.0.1", 9, C, rows_per_packet=2, frequencies_hz=HZ2)
    pkts = sender.packets(rows)
    sender.close()
    assert [len(p) for p in pkts] == [HEADER.size + 4 + 8 + n * (4 + 16 * C) + 4 for n in (2, 2, 1)]
    got = [parse_packet(p, C, HZ2) for p in pkts]
    assert all(g.version == 2 and g.frequencies_hz == HZ2 and g.channels == C for g in got)
    assert np.array_equal(np.concatenate([g.in_phase for g in got]), rows.in_phase)
    assert np.array_equal(np.concatenate([g.quadrature for g in got]), rows.quadrature)
    assert pkts[0] == pack_rows(0, rows.tick[:2], rows.in_phase[:2], rows.quadrature[:2],
                                frequencies_hz=HZ2)  # fmt: skip
    # the row layout on the wire: tick, f0 in-phase, f0 quadrature, f1 in-phase, ...
    off = HEADER.size + 4 + 8 + 4
    f1_i = np.frombuffer(pkts[0], "<f4", C, off + 8 * C)
    assert np.array_equal(f1_i, rows.in_phase[0, C:].astype(np.float32))
    assert max_rows_per_datagram(32, 2) == 2


@pytest.mark.parametrize(
    ("data_hz", "line_hz", "reason"),
    [
        (None, (5000.0,), None),  # an old single-frequency sensor on a single-frequency line
        (None, None, None),
        ((5000.0,), (5000.0,), None),
        (None, HZ2, "frequencies"),  # an old sensor on a two-frequency line: refused
        ((5000.0,), HZ2, "frequencies"),
        ((5000.0, 40000.0), HZ2, "frequencies"),
        (HZ2, (5000.0,), "frequencies"),
        (HZ2, HZ2, None),
    ],
)
def test_frequencies_checked(
    data_hz: tuple[float, ...] | None, line_hz: tuple[float, ...] | None, reason: str | None
) -> None:
    width = C * (1 if data_hz is None else len(data_hz))
    r = SensorRows(np.array([5, 55]), np.zeros((2, width)), np.ones((2, width)))
    data = pack_rows(3, r.tick, r.in_phase, r.quadrature, frequencies_hz=data_hz)
    if reason is None:
        pkt = parse_packet(data, C, line_hz)
        assert pkt.in_phase.shape == (2, width) and pkt.channels == C
        return
    with pytest.raises(PacketError) as exc:
        parse_packet(data, C, line_hz)
    assert exc.value.reason == reason and "\n" not in str(exc.value) and "Hz" in str(exc.value)


def test_reader_refuses_an_old_sensor_on_a_two_frequency_line() -> None:
    ring = RowRing(2 * C, capacity=1024, guard=64)
    reader = SensorReader(ring, every_ticks=50, frequencies_hz=HZ2)
    old = _rows(3)
    assert not reader.take(pack_rows(0, old.tick, old.in_phase, old.quadrature), 0.0)
    assert reader.refused["frequencies"] == 1 and "version 1" in reader.last_refusal
    new = _rows2(3)
    data = pack_rows(1, new.tick, new.in_phase, new.quadrature, frequencies_hz=HZ2)
    assert reader.take(data, 0.0) and ring.count == 3
    with pytest.raises(ValueError, match="frequencies"):
        SensorReader(RowRing(2 * C + 1), frequencies_hz=HZ2)


def test_an_unchecked_reader_takes_one_frequency_only() -> None:
    """A reader without configured frequencies holds C values per row: a
    two-frequency packet is refused, not written past its rows."""
    ring = RowRing(C, capacity=1024, guard=64)
    reader = SensorReader(ring, every_ticks=50)
    new = _rows2(3)
    data = pack_rows(1, new.tick, new.in_phase, new.quadrature, frequencies_hz=HZ2)
    assert not reader.take(data, 0.0) and reader.refused["frequencies"] == 1
    assert ring.count == 0
