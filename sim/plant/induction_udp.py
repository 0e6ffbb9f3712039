"""The induction bar's controller, as the virtual plant runs it: its rows as UDP
packets (layout: ``sortline/sensor/README.md``).

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
_MTU_PAYLOAD = 1472


class RowSender:
    """Sends rows to ``host:port`` in packets of at most ``rows_per_packet`` rows
    (default: what fits one unfragmented datagram). Never blocks: a datagram the
    socket cannot take now is dropped and counted (``dropped``)."""

    def __init__(self, host: str, port: int, channels: int, rows_per_packet: int = 0) -> None:
        if not 1 <= channels <= 256:
            raise ValueError(f"RowSender: channels {channels} outside 1..256")
        fit = max(1, (_MTU_PAYLOAD - _HEADER.size - 4) // (4 + 8 * channels))
        self.rows_per_packet = fit if rows_per_packet <= 0 else min(rows_per_packet, 0xFFFF)
        self.addr = (host, port)
        self.channels = channels
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
            body = bytearray(
                _HEADER.pack(b"SLIB", 1, self.channels, self.sequence, n, self.flags, int(ticks[0]))
            )
            for k in range(n):
                body += struct.pack("<I", int(ticks[k]))
                body += np.ascontiguousarray(part.in_phase[k], "<f4").tobytes()
                body += np.ascontiguousarray(part.quadrature[k], "<f4").tobytes()
            body += struct.pack("<I", zlib.crc32(bytes(body)))
            out.append(bytes(body))
            self.sequence = (self.sequence + 1) % (1 << 32)
        return out

    def send(self, rows: SensorRows) -> int:
        """Send ``rows``; returns the packets handed to the socket."""
        if len(rows) and rows.channels != self.channels:
            raise ValueError(f"RowSender: rows of {rows.channels} channels, bar of {self.channels}")
        n = 0
        for pkt in self.packets(rows):
            try:
                self._sock.sendto(pkt, self.addr)
                n += 1
            except (BlockingIOError, ConnectionRefusedError):
                self.dropped += 1
        self.sent += n
        return n
