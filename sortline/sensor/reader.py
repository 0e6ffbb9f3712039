"""``SensorReader``: the bar's UDP stream -> a ``RowRing``, on its own thread.

The frame loop never waits for it: fusion reads the ring the reader fills.
Each datagram is checked (``packet.parse_packet``); a refused one is counted
by its reason and the last reason kept. Gaps are found by the packet sequence
(packets lost) and by the rows' encoder counts (rows missing against
``every_ticks``); a stall is no valid packet for ``stall_ms`` (or none yet).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from typing import Any

from core.ticks import tick_diff
from sortline.sensor.packet import FLAG_FAULT, PacketError, parse_packet
from sortline.sensor.ring import RowRing

__all__ = ["SensorReader"]

log = logging.getLogger("sortline.sensor")

_POLL_S = 0.05
_RESTART_SEQ = 1024  # a sequence this far back is a restarted sender, not a late packet


class SensorReader:
    """host, port: where to listen (port 0: a free one, ``port`` after ``start``);
    every_ticks: the bar's; frequencies_hz: the bar's configured frequencies
    (None: one, unchecked); the ring holds coils x frequencies values per row,
    packets of another coil count or other frequencies are refused; stall_ms:
    no valid packet this long is a stall; ring: where rows go."""

    def __init__(
        self,
        ring: RowRing,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        every_ticks: int = 50,
        stall_ms: float = 200.0,
        frequencies_hz: tuple[float, ...] | None = None,
    ) -> None:
        if not stall_ms > 0 or every_ticks < 1:
            raise ValueError(f"SensorReader: stall_ms {stall_ms} > 0, every_ticks >= 1 needed")
        nf = 1 if frequencies_hz is None else len(frequencies_hz)
        if nf < 1 or ring.channels % nf:
            raise ValueError(
                f"SensorReader: a ring of {ring.channels} values per row cannot hold "
                f"{nf} frequencies"
            )
        self.frequencies_hz = None if frequencies_hz is None else tuple(frequencies_hz)
        self.coils = ring.channels // nf
        self.ring = ring
        self.host = host
        self._want_port = port
        self.every_ticks = every_ticks
        self.stall_s = stall_ms * 1e-3
        self.packets_ok = 0
        self.refused: Counter[str] = Counter()
        self.last_refusal = ""
        self.packets_lost = 0
        self.rows_missing = 0
        self.fault_packets = 0
        self.sensor_restarts = 0
        self.fault = False
        self._last_seq: int | None = None
        self._last_ok_s: float | None = None
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- life ---------------------------------------------------------------------------
    def bind(self) -> None:
        """Open the socket (``port`` is known from here; rows wait in its buffer)."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            sock.bind((self.host, self._want_port))
        except OSError as exc:
            sock.close()
            where = f"udp {self.host}:{self._want_port}"
            raise OSError(f"sensor: cannot listen on {where}: {exc.strerror or exc}") from None
        sock.settimeout(_POLL_S)
        self._sock = sock

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("SensorReader already started")
        self.bind()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sensor-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the socket; safe twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SensorReader:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("SensorReader not started")
        return int(self._sock.getsockname()[1])

    # ---- state --------------------------------------------------------------------------
    def stalled(self, now_s: float | None = None) -> bool:
        """No valid packet for ``stall_ms`` (or none yet)."""
        last = self._last_ok_s
        now = time.monotonic() if now_s is None else now_s
        return last is None or now - last > self.stall_s

    def problem(self) -> str:
        """'' when healthy, else one line for an alarm."""
        if self.stalled():
            return f"sensor bar: no valid packet for more than {self.stall_s * 1e3:.0f} ms"
        if self.fault:
            return "sensor bar: the sensor reports a fault"
        return ""

    def status(self) -> dict[str, Any]:
        return {
            "packets_ok": self.packets_ok,
            "refused": dict(self.refused),
            "last_refusal": self.last_refusal,
            "packets_lost": self.packets_lost,
            "rows_missing": self.rows_missing,
            "rows": self.ring.count,
            "fault": self.fault,
            "stalled": self.stalled(),
        }

    # ---- thread -------------------------------------------------------------------------
    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            self.take(data, time.monotonic())

    def take(self, data: bytes, now_s: float) -> bool:
        """Check one datagram and keep its rows; False when refused."""
        try:
            pkt = parse_packet(data, self.coils, self.frequencies_hz)
            if pkt.in_phase.shape[1] != self.ring.channels:  # unchecked: one frequency only
                raise PacketError(
                    "frequencies",
                    f"packet {pkt.sequence} carries {pkt.frequencies} frequencies, the reader "
                    f"is configured for {self.ring.channels // self.coils}",
                )
        except PacketError as exc:
            self.refused[exc.reason] += 1
            self.last_refusal = str(exc)
            return False
        if self._last_seq is not None:
            ahead = tick_diff(pkt.sequence, self._last_seq)
            if -_RESTART_SEQ < ahead <= 0:
                self.refused["sequence"] += 1
                self.last_refusal = f"packet {pkt.sequence} after {self._last_seq}: old or repeated"
                return False
            if ahead > 0:
                self.packets_lost += ahead - 1
            else:  # far behind: the sensor controller restarted its counter
                self.sensor_restarts += 1
        if self.ring.count:
            step = tick_diff(int(pkt.tick_u32[0]), self.ring.last_tick_u32 or 0)
            self.rows_missing += max(step // self.every_ticks - 1, 0)
        self._last_seq = pkt.sequence
        self.fault = bool(pkt.flags & FLAG_FAULT)
        self.fault_packets += int(self.fault)
        self.ring.append(pkt.tick_u32, pkt.in_phase, pkt.quadrature)
        self.packets_ok += 1
        self._last_ok_s = now_s
        return True
