"""The bridge's pulse side: queue, deadline check, ring writes, acknowledgements.

``PulseSender`` runs on the bridge's event loop (every method but
``resolve`` is loop-only) and shares the bridge's ``Session`` and counters
under the bridge's lock (``cv``). Up to 15 records go out per FC 23 request
that also reads back the acknowledgement block (HR 100..); each batch's time
from its write request to the acknowledgement that settles it goes to the
``ack_latency`` histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

from core.types import Pulses
from plc import regmap as rm
from plc.bridge_config import BridgeConfig
from plc.bridge_latency import LatencyHistogram
from plc.bridge_state import BridgeCounters, Row, Session
from plc.link import Link, LinkDownError, LinkError, PlcRefusedError


class PulseSender:
    """Pulses from ``enqueue`` to the PLC's ring.

    cv: the bridge's lock (as a condition: ``flush`` waits on it);
    report: records a failed request (``PlcBridge._error``);
    read_status: one status read (refreshes ``session``);
    on_encoder: called with (t_sent, t_recv), lock held, after an ack block
    updated ``session.tick``;
    ack_latency: per batch settled by its acknowledgements, the seconds from
    its write request to the last of them.
    """

    def __init__(
        self,
        config: BridgeConfig,
        link: Link,
        session: Session,
        counters: BridgeCounters,
        cv: threading.Condition,
        report: Callable[[LinkError], None],
        read_status: Callable[[], Awaitable[None]],
        on_encoder: Callable[[float, float], None],
        ack_latency: LatencyHistogram | None = None,
    ) -> None:
        self.config = config
        self._link = link
        self._s = session
        self._c = counters
        self._cv = cv
        self._report = report
        self._read_status = read_status
        self._on_encoder = on_encoder
        self._ack_latency = ack_latency
        self.queue: deque[Row] = deque()
        self.inflight: list[Row] = []
        self._wake = asyncio.Event()  # binds to the loop on first use

    def enqueue(self, pulses: Pulses) -> None:
        rows = zip(
            pulses.actuator.tolist(), pulses.first_valve.tolist(), pulses.last_valve.tolist(),
            pulses.on_tick.tolist(), pulses.off_tick.tolist(), strict=True,
        )  # fmt: skip
        self.queue.extend(rows)
        overflow = len(self.queue) - self.config.max_queue
        if overflow > 0:  # oldest first: they are the nearest to their deadline
            for _ in range(overflow):
                self.queue.popleft()
            self.resolve(overflow=overflow)
        self._wake.set()

    def resolve(self, **counts: int) -> None:
        """Add to the pulse counters; wake ``flush`` when a pulse met its fate."""
        with self._cv:
            fates = 0
            for name, n in counts.items():
                setattr(self._c, name, getattr(self._c, name) + n)
                fates += n if name != "sent" else 0
            if fates:
                self._c.resolved += fates
                self._cv.notify_all()

    async def on_connect(self, same_boot: bool, restarted: bool = False) -> None:
        """After a reconnect: settle what the PLC took of the records in flight
        when the link failed (same PLC boot), queue the rest to be sent again.
        ``restarted`` (a new boot of a PLC seen before): every queued and
        in-flight pulse is dropped and counted ``stale``: its ticks belong to
        the old boot's encoder count (a restarted counter would fire it far
        from its fragment)."""
        if restarted:
            stale = len(self.inflight) + len(self.queue)
            self.inflight, self.queue = [], type(self.queue)()
            if stale:
                self.resolve(stale=stale)
            return
        if self.inflight and same_boot:
            t_sent = time.monotonic()
            ack = await self._link.read_holding(rm.HR_ACK_BASE, rm.HR_ACK_WORDS)
            self._settle_acked(ack, t_sent, time.monotonic())
        self.queue.extendleft(reversed(self.inflight))  # fate unknown: send again
        self.inflight = []

    async def run(self) -> None:
        """The send loop (one link session)."""
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._send_batch()

    def drop_late(self) -> None:
        """Refuse queued pulses that can no longer make their deadline."""
        if not self.queue:
            return
        with self._cv:
            keep = self._s.deadline_mask(
                [r[3] for r in self.queue], time.monotonic(), self.config.extrapolate_encoder
            )
        kept = [r for r, ok in zip(self.queue, keep, strict=True) if ok]
        dropped = len(self.queue) - len(kept)
        self.queue = deque(kept)
        if dropped:
            self.resolve(late=dropped)

    def _take_batch(self) -> list[Row]:
        self.drop_late()
        s = self._s
        room = rm.RING_SLOTS - s.next_seq % rm.RING_SLOTS  # stay contiguous in the ring
        batch: list[Row] = []
        while self.queue and len(batch) < min(rm.RECORDS_PER_WRITE, room):
            row = self.queue.popleft()
            if not s.fits(row):
                self.resolve(invalid=1)
                continue
            batch.append(row)
        return batch

    async def _send_batch(self) -> None:
        batch = self._take_batch()
        if not batch:
            return
        seq0 = self._s.next_seq
        words = rm.pack_records(
            [rm.seq_add(seq0, i) for i in range(len(batch))],
            *zip(*batch, strict=True),
        )
        self.inflight = batch
        self.resolve(sent=len(batch))
        t_write = t_sent = time.monotonic()
        try:
            ack = await self._link.write_read(
                rm.slot_address(seq0), words, rm.HR_ACK_BASE, rm.HR_ACK_WORDS
            )
        except PlcRefusedError as err:
            await self._refused(err, seq0, len(batch))
            return
        deadline = time.monotonic() + 5 * self.config.timeout_s
        while not self._settle_acked(ack, t_sent, time.monotonic()):
            if time.monotonic() > deadline:  # a real PLC takes them on a later scan
                raise LinkDownError(f"PLC did not take ring records from seq {seq0} in time")
            await asyncio.sleep(0.001)
            t_sent = time.monotonic()
            ack = await self._link.read_holding(rm.HR_ACK_BASE, rm.HR_ACK_WORDS)
        if self._ack_latency is not None:
            self._ack_latency.observe(time.monotonic() - t_write)

    def _settle_acked(self, ack: list[int], t_sent: float, t_recv: float) -> bool:
        """Resolve the in-flight records the PLC has taken (per the HR 100..
        block ``ack``, requested at ``t_sent``, replied at ``t_recv``); True
        when none is left."""
        rows = self.inflight
        with self._cv:
            seq0 = self._s.next_seq
            taken, results = self._s.apply_ack(ack, seq0, len(rows), t_sent)
            self._s.next_seq = rm.seq_add(seq0, taken)
            self._on_encoder(t_sent, t_recv)
        bad = (rm.SlotResult.LATE, rm.SlotResult.NOT_READY, rm.SlotResult.EMPTY)
        ok = sum(1 for r in results if r not in bad)
        self.resolve(acked=ok, rejected_by_plc=len(results) - ok)
        self.inflight = rows[taken:]
        return not self.inflight

    async def _refused(self, err: PlcRefusedError, seq0: int, n: int) -> None:
        why = ""
        with contextlib.suppress(PlcRefusedError):
            words = await self._link.read_input(rm.reg("last_reject_seq").address, 2)
            reason = (
                rm.RejectReason(words[1])
                if words[1] in rm.RejectReason._value2member_map_
                else words[1]
            )
            why = f"; PLC: seq {words[0]} {getattr(reason, 'name', reason)}"
        self._report(
            PlcRefusedError(f"{err} (ring seq {seq0}..{rm.seq_add(seq0, n - 1)}){why}", err.code)
        )
        self.inflight = []
        self.resolve(rejected_by_plc=n)
        await self._read_status()
        with self._cv:
            self._s.next_seq = rm.seq_add(self._s.acked_seq, 1)
