"""The induction bar's controller, as the virtual plant runs it: its rows as UDP
packets (layout: ``sortline/sensor/README.md``; version 1 for a sensor that
does not state its frequency, version 2 stating them).

Written from the layout table, not from the reader's code, the way a sensor
vendor would implement it; the tests check the two against each other.
"""

from __future__ import annotations

import socket
import struct
import zlib

import numpy as np

from core.sensor_rows import SensorRows

__all__ = ["RowSender"]

_HEADER = struct.Struct("<4sHHIHHI")
_HEADER_V2 = struct.Struct("<HH")  # frequencies, reserved; then f32 Hz each
_MTU_PAYLOAD = 1472


class RowSender:
    """Sends rows to ``host:port`` in packets of at most ``rows_per_packet`` rows
    (default: what fits one unfragmented datagram). Never blocks: a datagram the
    socket cannot take now is dropped and counted (``dropped``).

    channels: coils; frequencies_hz: None sends version 1 (one frequency,
    unstated: the old single-frequency sensor), else version 2 stating them,
    rows (N, F x C) frequency-major."""

    def __init__(
        self,
        host: str,
        port: int,
        channels: int,
        rows_per_packet: int = 0,
        frequencies_hz: tuple[float, ...] | None = None,
    ) -> None:
        if not 1 <= channels <= 256:
            raise ValueError(f"RowSender: channels {channels} outside 1..256")
        nf = 1 if frequencies_hz is None else len(frequencies_hz)
        if not 1 <= nf <= 8:
            raise ValueError(f"RowSender: {nf} frequencies outside 1..8")
        self.frequencies_hz = frequencies_hz
        self._head = b""
        if frequencies_hz is not None:
            hz = np.asarray(frequencies_hz, "<f4").tobytes()
            self._head = _HEADER_V2.pack(nf, 0) + hz
        fit = max(1, (_MTU_PAYLOAD - _HEADER.size - len(self._head) - 4) // (4 + 8 * channels * nf))
        self.rows_per_packet = fit if rows_per_packet <= 0 else min(rows_per_packet, 0xFFFF)
        self.addr = (host, port)
        self.channels = channels
        self.frequencies = nf
        self.sequence = 0
        self.flags = 0
        self.sent = 0
        self.dropped = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)

    def close(self) -> None:
        self._sock.close()

    def packets(self, rows: SensorRows) -> list[bytes]:
        """The packets for ``rows`` (sequence numbers taken)."""
        out = []
        for a in range(0, len(rows), self.rows_per_packet):
            part = rows[a : a + self.rows_per_packet]
            n = len(part)
            ticks = (part.tick % (1 << 32)).astype("<u4")
            version = 1 if self.frequencies_hz is None else 2
            body = bytearray(
                _HEADER.pack(
                    b"SLIB", version, self.channels, self.sequence, n, self.flags, int(ticks[0])
                )
            )
            body += self._head
            c = self.channels
            for k in range(n):
                body += struct.pack("<I", int(ticks[k]))
                for f in range(self.frequencies):  # per frequency: in-phase, then quadrature
                    cols = slice(f * c, (f + 1) * c)
                    body += np.ascontiguousarray(part.in_phase[k, cols], "<f4").tobytes()
                    body += np.ascontiguousarray(part.quadrature[k, cols], "<f4").tobytes()
            body += struct.pack("<I", zlib.crc32(bytes(body)))
            out.append(bytes(body))
            self.sequence = (self.sequence + 1) % (1 << 32)
        return out

    def send(self, rows: SensorRows) -> int:
        """Send ``rows``; returns the packets handed to the socket."""
        width = self.channels * self.frequencies
        if len(rows) and rows.channels != width:
            raise ValueError(
                f"RowSender: rows of {rows.channels} values, bar of {self.channels} coils x "
                f"{self.frequencies} frequencies"
            )
        n = 0
        for pkt in self.packets(rows):
            try:
                self._sock.sendto(pkt, self.addr)
                n += 1
            except (BlockingIOError, ConnectionRefusedError):
                self.dropped += 1
        self.sent += n
        return n
