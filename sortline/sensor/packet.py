"""The sensor bar's UDP packet (``sortline/sensor/README.md`` has the table).

Pure functions, no sockets: ``pack_rows`` builds one packet, ``parse_packet``
checks one and returns its rows or the reason it was refused (one line naming
the field and what was wrong).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np

__all__ = [
    "HEADER",
    "MAGIC",
    "MAX_CHANNELS",
    "VERSION",
    "Packet",
    "PacketError",
    "max_rows_per_datagram",
    "pack_rows",
    "parse_packet",
]

MAGIC = b"SLIB"
VERSION = 1
HEADER = struct.Struct("<4sHHIHHI")  # magic, version, channels, sequence, rows, flags, first tick
TRAILER = struct.Struct("<I")  # CRC-32 (IEEE 802.3, zlib.crc32) of everything before it
MAX_CHANNELS = 256
FLAG_FAULT = 0x0001  # the sensor's own fault bit (coil open, drive failed): rows kept, alarm
_MTU_PAYLOAD = 1472  # an Ethernet frame's UDP payload without IP fragmentation


class PacketError(ValueError):
    """A packet refused: ``reason`` is a short key for counting, str() the detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Packet:
    """sequence: u32 packet counter; flags: u16; tick_u32: (N,) uint32 encoder count
    of each row; in_phase, quadrature: (N, C) float32."""

    sequence: int
    flags: int
    tick_u32: np.ndarray
    in_phase: np.ndarray
    quadrature: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.in_phase.shape[1])


def _row_dtype(channels: int) -> np.dtype:
    return np.dtype([("tick", "<u4"), ("i", "<f4", (channels,)), ("q", "<f4", (channels,))])


def max_rows_per_datagram(channels: int) -> int:
    """Rows that fit one unfragmented UDP datagram (at least 1)."""
    row = 4 + 8 * channels
    return max(1, (_MTU_PAYLOAD - HEADER.size - TRAILER.size) // row)


def pack_rows(
    sequence: int,
    tick_u32: np.ndarray,
    in_phase: np.ndarray,
    quadrature: np.ndarray,
    flags: int = 0,
) -> bytes:
    """One packet of N rows (``tick_u32`` (N,), values (N, C))."""
    n, c = in_phase.shape
    if n < 1 or n > 0xFFFF or not 1 <= c <= MAX_CHANNELS or quadrature.shape != (n, c):
        raise ValueError(f"pack_rows: {n} rows x {c} channels cannot make a packet")
    rows = np.empty(n, _row_dtype(c))
    rows["tick"] = np.asarray(tick_u32, np.int64) % (1 << 32)
    rows["i"] = in_phase
    rows["q"] = quadrature
    head = HEADER.pack(MAGIC, VERSION, c, sequence % (1 << 32), n, flags, int(rows["tick"][0]))
    body = head + rows.tobytes()
    return body + TRAILER.pack(zlib.crc32(body))


def parse_packet(data: bytes, channels: int | None = None) -> Packet:
    """Check and decode one packet; raises ``PacketError`` with the reason.

    channels: the channel count the line is configured for (None: any).
    """
    if len(data) < HEADER.size + TRAILER.size:
        raise PacketError("short", f"packet of {len(data)} bytes is shorter than its header")
    magic, version, c, seq, n, flags, first = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError("magic", f"packet magic {magic!r} is not {MAGIC!r}")
    if version != VERSION:
        raise PacketError("version", f"packet version {version}, this reader speaks {VERSION}")
    if not 1 <= c <= MAX_CHANNELS or n < 1:
        raise PacketError("size", f"packet header: {c} channels x {n} rows")
    want = HEADER.size + n * (4 + 8 * c) + TRAILER.size
    if len(data) != want:
        raise PacketError("length", f"packet of {len(data)} bytes, its header says {want}")
    (crc,) = TRAILER.unpack_from(data, want - TRAILER.size)
    if zlib.crc32(data[: want - TRAILER.size]) != crc:
        raise PacketError("crc", f"packet {seq}: CRC-32 mismatch")
    if channels is not None and c != channels:
        raise PacketError("channels", f"packet {seq} has {c} channels, the bar has {channels}")
    rows = np.frombuffer(data, _row_dtype(c), n, HEADER.size)
    ticks = rows["tick"].astype(np.uint32)
    if int(ticks[0]) != first:
        raise PacketError("tick", f"packet {seq}: first row's count {ticks[0]} != header {first}")
    step = (ticks[1:].astype(np.int64) - ticks[:-1].astype(np.int64)) % (1 << 32)
    if np.any(step == 0) or np.any(step >= 1 << 31):
        raise PacketError("tick", f"packet {seq}: row counts do not rise")
    i, q = rows["i"].astype(np.float32), rows["q"].astype(np.float32)
    if not (np.isfinite(i).all() and np.isfinite(q).all()):
        raise PacketError("value", f"packet {seq}: a value is NaN or infinite")
    return Packet(int(seq), int(flags), ticks, i, q)
