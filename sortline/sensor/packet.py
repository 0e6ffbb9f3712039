"""The sensor bar's UDP packet (``sortline/sensor/README.md`` has the tables).

Pure functions, no sockets: ``pack_rows`` builds one packet, ``parse_packet``
checks one and returns its rows or the reason it was refused (one line naming
the field and what was wrong). Version 1: one frequency (not stated in the
packet); version 2: the header states F frequencies (Hz) and every row carries
in-phase and quadrature per frequency. Rows come out frequency-major: value
index f x C + c.
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
    "MAX_FREQUENCIES",
    "VERSION",
    "Packet",
    "PacketError",
    "max_rows_per_datagram",
    "pack_rows",
    "parse_packet",
]

MAGIC = b"SLIB"
VERSION = 2  # the newest this module writes; it reads 1 and 2
HEADER = struct.Struct("<4sHHIHHI")  # magic, version, channels, sequence, rows, flags, first tick
HEADER_V2 = struct.Struct("<HH")  # version 2 goes on: frequencies F, reserved (0); then f32[F] Hz
TRAILER = struct.Struct("<I")  # CRC-32 (IEEE 802.3, zlib.crc32) of everything before it
MAX_CHANNELS = 256
MAX_FREQUENCIES = 8  # what the format carries (the bar model and fusion use 1 or 2)
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
    of each row; in_phase, quadrature: (N, F x C) float32, frequency-major;
    frequencies_hz: the F frequencies the packet states (version 1: () -- one,
    unstated); version: of the packet."""

    sequence: int
    flags: int
    tick_u32: np.ndarray
    in_phase: np.ndarray
    quadrature: np.ndarray
    frequencies_hz: tuple[float, ...] = ()
    version: int = VERSION

    @property
    def frequencies(self) -> int:
        return max(len(self.frequencies_hz), 1)

    @property
    def channels(self) -> int:
        """Coils (values per row and component / frequencies)."""
        return int(self.in_phase.shape[1]) // self.frequencies


def _row_dtype(channels: int, frequencies: int = 1) -> np.dtype:
    """A row: u32 count, then per frequency f32[C] in-phase and f32[C] quadrature."""
    return np.dtype([("tick", "<u4"), ("iq", "<f4", (frequencies, 2, channels))])


def _head_size(version: int, frequencies: int) -> int:
    return HEADER.size + (HEADER_V2.size + 4 * frequencies if version >= 2 else 0)


def max_rows_per_datagram(channels: int, frequencies: int = 1) -> int:
    """Rows that fit one unfragmented UDP datagram (at least 1); ``frequencies``
    > 1 means a version-2 packet."""
    row = 4 + 8 * channels * frequencies
    head = _head_size(2 if frequencies > 1 else 1, frequencies)
    return max(1, (_MTU_PAYLOAD - head - TRAILER.size) // row)


def pack_rows(
    sequence: int,
    tick_u32: np.ndarray,
    in_phase: np.ndarray,
    quadrature: np.ndarray,
    flags: int = 0,
    frequencies_hz: tuple[float, ...] | None = None,
) -> bytes:
    """One packet of N rows (``tick_u32`` (N,), values (N, F x C) frequency-major).

    frequencies_hz: None writes version 1 (one frequency, unstated: the old
    single-frequency sensor); a tuple of F writes version 2 stating them."""
    n, width = in_phase.shape
    f = 1 if frequencies_hz is None else len(frequencies_hz)
    c = width // max(f, 1)
    if (
        n < 1 or n > 0xFFFF or not 1 <= f <= MAX_FREQUENCIES or c * f != width
        or not 1 <= c <= MAX_CHANNELS or quadrature.shape != (n, width)
    ):  # fmt: skip
        raise ValueError(f"pack_rows: {n} rows x {width} values x {f} frequencies: no packet")
    rows = np.empty(n, _row_dtype(c, f))
    rows["tick"] = np.asarray(tick_u32, np.int64) % (1 << 32)
    rows["iq"][:, :, 0, :] = np.asarray(in_phase).reshape(n, f, c)
    rows["iq"][:, :, 1, :] = np.asarray(quadrature).reshape(n, f, c)
    version = 1 if frequencies_hz is None else 2
    head = HEADER.pack(MAGIC, version, c, sequence % (1 << 32), n, flags, int(rows["tick"][0]))
    if frequencies_hz is not None:
        head += HEADER_V2.pack(f, 0) + np.asarray(frequencies_hz, "<f4").tobytes()
    body = head + rows.tobytes()
    return body + TRAILER.pack(zlib.crc32(body))


def _frequencies(data: bytes, version: int, seq: int) -> tuple[float, ...]:
    """Version 2's stated frequencies (Hz); () for version 1."""
    if version == 1:
        return ()
    if len(data) < HEADER.size + HEADER_V2.size + TRAILER.size:
        raise PacketError("short", f"packet {seq}: version 2 shorter than its header")
    f, _reserved = HEADER_V2.unpack_from(data, HEADER.size)
    if not 1 <= f <= MAX_FREQUENCIES:
        raise PacketError("size", f"packet {seq}: {f} frequencies (1..{MAX_FREQUENCIES})")
    if len(data) < _head_size(2, f) + TRAILER.size:
        raise PacketError("short", f"packet {seq}: shorter than its {f} frequencies")
    hz = np.frombuffer(data, "<f4", f, HEADER.size + HEADER_V2.size)
    return tuple(float(x) for x in hz)


def _check_frequencies(seq: int, stated: tuple[float, ...], want: tuple[float, ...] | None) -> None:
    """Refuse a packet whose frequencies are not the bar's configured ones."""
    if want is None:
        return
    if not stated:  # version 1: one frequency, not stated
        if len(want) != 1:
            raise PacketError(
                "frequencies",
                f"packet {seq} is version 1 (one frequency); the bar is configured for "
                f"{len(want)}: {list(want)} Hz",
            )
        return
    if len(stated) != len(want) or any(
        abs(a - b) > 1e-4 * max(b, 1.0) for a, b in zip(stated, want, strict=True)
    ):
        raise PacketError(
            "frequencies",
            f"packet {seq} carries {list(stated)} Hz, the bar is configured for {list(want)} Hz",
        )


def parse_packet(
    data: bytes, channels: int | None = None, frequencies_hz: tuple[float, ...] | None = None
) -> Packet:
    """Check and decode one packet (version 1 or 2); raises ``PacketError`` with the reason.

    channels: the coils the line is configured for (None: any); frequencies_hz:
    the bar's configured frequencies (None: any; a version-1 packet passes
    only where one frequency is configured, its own being unstated).
    """
    if len(data) < HEADER.size + TRAILER.size:
        raise PacketError("short", f"packet of {len(data)} bytes is shorter than its header")
    magic, version, c, seq, n, flags, first = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise PacketError("magic", f"packet magic {magic!r} is not {MAGIC!r}")
    if version not in (1, 2):
        raise PacketError("version", f"packet version {version}, this reader speaks 1 and 2")
    if not 1 <= c <= MAX_CHANNELS or n < 1:
        raise PacketError("size", f"packet header: {c} channels x {n} rows")
    stated = _frequencies(data, version, seq)
    f = max(len(stated), 1)
    head = _head_size(version, f)
    want = head + n * (4 + 8 * c * f) + TRAILER.size
    if len(data) != want:
        raise PacketError("length", f"packet of {len(data)} bytes, its header says {want}")
    (crc,) = TRAILER.unpack_from(data, want - TRAILER.size)
    if zlib.crc32(data[: want - TRAILER.size]) != crc:
        raise PacketError("crc", f"packet {seq}: CRC-32 mismatch")
    if channels is not None and c != channels:
        raise PacketError("channels", f"packet {seq} has {c} channels, the bar has {channels}")
    _check_frequencies(seq, stated, frequencies_hz)
    rows = np.frombuffer(data, _row_dtype(c, f), n, head)
    ticks = rows["tick"].astype(np.uint32)
    if int(ticks[0]) != first:
        raise PacketError("tick", f"packet {seq}: first row's count {ticks[0]} != header {first}")
    step = (ticks[1:].astype(np.int64) - ticks[:-1].astype(np.int64)) % (1 << 32)
    if np.any(step == 0) or np.any(step >= 1 << 31):
        raise PacketError("tick", f"packet {seq}: row counts do not rise")
    i = rows["iq"][:, :, 0, :].reshape(n, f * c).astype(np.float32)
    q = rows["iq"][:, :, 1, :].reshape(n, f * c).astype(np.float32)
    if not (np.isfinite(i).all() and np.isfinite(q).all()):
        raise PacketError("value", f"packet {seq}: a value is NaN or infinite")
    return Packet(int(seq), int(flags), ticks, i, q, stated, int(version))
