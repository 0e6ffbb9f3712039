"""``PlcBridge``: sortline's only way to move a valve (plc/REGISTERS.md).

The bridge runs its own asyncio loop in a daemon thread. The real-time loop
hands it ``Pulses`` with ``submit`` (``loop.call_soon_threadsafe``; it never
waits) and reads ``snapshot()``. On the loop:
- a heartbeat write and a status read every ``heartbeat_s``;
- a sender that writes queued pulses into the PLC's ring, up to 15 records
  per FC 23 request that also reads back the acknowledgement block;
- a pulse whose ``on_tick`` minus the lead (``deadline_lead_ms`` at the
  current belt speed) is not ahead of the PLC's encoder as estimated now
  (last reading + speed x elapsed) is refused and counted (``pulses_late``);
- on a lost link: bounded exponential reconnect; records whose fate is
  unknown are resolved from the PLC's acknowledgement after reconnecting
  (same ``boot_id``) or sent again (the PLC restarted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import deque

from core.types import Pulses
from plc import regmap as rm
from plc.bridge_config import BridgeConfig, PlcStatus
from plc.bridge_state import BridgeCounters, Row, Session, decode_cycles, decode_status
from plc.link import Link, LinkDownError, LinkError, LinkParams, ModbusLink, PlcRefusedError

__all__ = ["BridgeConfig", "PlcBridge", "PlcStatus"]

CYCLES_PERIOD_S = 1.0


class PlcBridge:
    """Async Modbus client for one PLC; see the module docstring."""

    def __init__(self, config: BridgeConfig, link: Link | None = None) -> None:
        """``link``: None for Modbus TCP/RTU per ``config``; tests may pass an
        in-process twin (``sim.vplc.link.CoreLink``)."""
        self.config = config
        self._link: Link = link or ModbusLink(
            LinkParams(
                config.transport, config.host, config.port, config.device_id,
                config.serial_port, config.baudrate, config.timeout_s, config.retries,
            )
        )  # fmt: skip
        self._lock = threading.Lock()
        self._resolved_cv = threading.Condition(self._lock)
        self._c = BridgeCounters()
        self._s = Session()
        self._queue: deque[Row] = deque()
        self._inflight: list[Row] = []
        self._commands: deque[int] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wake: asyncio.Event | None = None
        self._main_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected_evt = threading.Event()

    # ---- public, any thread ----------------------------------------------
    def start(self) -> None:
        """Start the loop thread; returns immediately (see ``wait_connected``)."""
        if self._thread is not None:
            raise RuntimeError("PlcBridge already started")
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="plc-bridge", daemon=True
        )
        self._thread.start()
        started.wait(5.0)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop heartbeats and close the link (the PLC's watchdog then trips)."""
        loop, thread = self._loop, self._thread
        self._stopping = True
        if loop is not None and thread is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._cancel_main)
            thread.join(timeout_s)
        self._thread = None

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected_evt.wait(timeout_s)

    def submit(self, pulses: Pulses) -> None:
        """Queue ``pulses`` for the PLC; never blocks."""
        if not len(pulses):
            return
        loop = self._loop
        if loop is None or self._stopping:
            raise RuntimeError("PlcBridge.submit: bridge not running")
        with self._lock:
            self._c.submitted += len(pulses)
        loop.call_soon_threadsafe(self._enqueue, pulses)

    def command(self, cmd: rm.PackMLCommand) -> None:
        """Queue a PackML command (HR 2) for the next heartbeat; never blocks.
        Commands still queued when the link goes down are dropped (reported in
        ``last_error``): an operator's Start must not fire minutes later."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("PlcBridge.command: bridge not running")
        loop.call_soon_threadsafe(self._commands.append, int(cmd))

    def flush(self, timeout_s: float) -> bool:
        """Block until every pulse submitted so far was acknowledged or refused.
        For stepped simulation and tests only."""
        with self._resolved_cv:
            target = self._c.submitted
            return self._resolved_cv.wait_for(lambda: self._c.resolved >= target, timeout_s)

    def estimate_tick(self, now_s: float | None = None) -> int | None:
        """The PLC's encoder count now (uint32), extrapolated from the last read."""
        with self._lock:
            now = time.monotonic() if now_s is None else now_s
            return self._s.estimate_tick(now, self.config.mm_per_tick)

    def snapshot(self) -> PlcStatus:
        with self._lock:
            s, c = self._s, self._c
            return PlcStatus(
                connected=s.connected, encoder_tick=s.tick, encoder_t_s=s.tick_t_s,
                speed_mm_s=s.speed_mm_s, state=s.state,
                estop=bool(s.inputs & rm.InputBit.ESTOP), inputs=s.inputs, faults=s.faults,
                last_error=s.last_error, acked_seq=s.acked_seq, boot_id=s.boot_id,
                heartbeat=s.heartbeat, pulses_submitted=c.submitted, pulses_sent=c.sent,
                pulses_acked=c.acked, pulses_late=c.late,
                pulses_rejected_by_plc=c.rejected_by_plc, pulses_invalid=c.invalid,
                pulses_overflow=c.overflow,
                reconnects=c.reconnects, read_errors=c.read_errors,
                plc_counters=dict(s.plc_counters), valve_cycles=s.valve_cycles,
                t_s=time.monotonic(),
            )  # fmt: skip

    # ---- loop side ----------------------------------------------------------
    def _set_rt_priority(self) -> None:
        prio = self.config.rt_priority
        if prio is None:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(prio))  # this thread
        except (OSError, AttributeError) as exc:
            self._s.last_error = f"rt_priority {prio}: {exc}"

    def _run(self, started: threading.Event) -> None:
        self._set_rt_priority()
        loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._main_task = loop.create_task(self._main())
        self._loop = loop
        started.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._main_task)
        finally:
            self._link.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _cancel_main(self) -> None:
        if self._main_task is not None:
            self._main_task.cancel()

    def _enqueue(self, pulses: Pulses) -> None:
        rows = zip(
            pulses.actuator.tolist(), pulses.first_valve.tolist(), pulses.last_valve.tolist(),
            pulses.on_tick.tolist(), pulses.off_tick.tolist(), strict=True,
        )  # fmt: skip
        self._queue.extend(rows)
        overflow = len(self._queue) - self.config.max_queue
        if overflow > 0:  # oldest first: they are the nearest to their deadline
            for _ in range(overflow):
                self._queue.popleft()
            self._resolve(overflow=overflow)
        self._kick()

    def _resolve(self, **counts: int) -> None:
        """Add to the pulse counters; wake ``flush`` when a pulse met its fate."""
        with self._resolved_cv:
            fates = 0
            for name, n in counts.items():
                setattr(self._c, name, getattr(self._c, name) + n)
                fates += n if name != "sent" else 0
            if fates:
                self._c.resolved += fates
                self._resolved_cv.notify_all()

    def _error(self, err: LinkError, *, read: bool) -> None:
        with self._lock:
            self._s.last_error = str(err)
            self._c.read_errors += int(read)

    async def _main(self) -> None:
        backoff_s = min(0.02, self.config.reconnect_max_s)
        ever = False
        while not self._stopping:
            up = False
            try:
                await self._link.connect()
                up = True
                await self._on_connect()
                with self._lock:
                    self._c.reconnects += int(ever)
                ever, backoff_s = True, min(0.02, self.config.reconnect_max_s)
                await self._session()
            except LinkError as err:
                self._error(err, read=up)
            except Exception as exc:  # never let the bridge thread die: report, reconnect
                self._error(LinkError(f"internal error: {exc!r}"), read=up)
            self._link.close()
            with self._lock:
                self._s.connected = False
            self._connected_evt.clear()
            self._drop_commands()
            self._drop_late()
            await asyncio.sleep(backoff_s)  # new pulses do not cut the backoff short
            backoff_s = min(backoff_s * 2, self.config.reconnect_max_s)

    async def _read_status(self) -> None:
        # the count was sampled no earlier than the request left: stamping it with
        # the send time keeps the estimate ahead of the encoder, never behind
        t_sent = time.monotonic()
        words = await self._link.read_input(0, rm.IR_STATUS_WORDS)
        with self._lock:
            decode_status(self._s, words, t_sent)

    async def _read_cycles(self) -> None:
        words: list[int] = []
        total = 2 * self._s.n_valves
        for start in range(0, total, 124):  # 62 valves per request
            count = min(124, total - start)
            words += await self._link.read_input(rm.IR_VALVE_CYCLES_BASE + start, count)
        with self._lock:
            self._s.valve_cycles = decode_cycles(words)

    async def _on_connect(self) -> None:
        boot_before = self._s.boot_id
        await self._read_status()
        if self.config.watchdog_ms is not None:
            await self._link.write_holding(rm.HR_WATCHDOG_MS, [int(self.config.watchdog_ms)])
        if self._inflight and self._s.boot_id == boot_before:
            t_sent = time.monotonic()
            ack = await self._link.read_holding(rm.HR_ACK_BASE, rm.HR_ACK_WORDS)
            self._settle_acked(ack, t_sent)
        self._queue.extendleft(reversed(self._inflight))  # fate unknown: send again
        self._inflight = []
        with self._lock:
            self._s.next_seq = rm.seq_add(self._s.acked_seq, 1)
            self._s.connected = True
        self._connected_evt.set()

    async def _session(self) -> None:
        tasks = [asyncio.ensure_future(self._poll_loop()), asyncio.ensure_future(self._send_loop())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll_loop(self) -> None:
        period = self.config.heartbeat_s
        next_t = next_cycles_t = time.monotonic()
        while not self._stopping:
            with self._lock:
                self._s.heartbeat = (self._s.heartbeat + 1) & 0xFFFF
                hb = self._s.heartbeat
            await self._link.write_holding(rm.HR_HEARTBEAT, [hb])
            while self._commands:
                await self._guarded(self._link.write_holding(rm.HR_COMMAND, [self._commands[0]]))
                self._commands.popleft()
            await self._guarded(self._read_status())
            if time.monotonic() >= next_cycles_t:  # valve wear: once per CYCLES_PERIOD_S
                next_cycles_t = time.monotonic() + CYCLES_PERIOD_S
                await self._guarded(self._read_cycles())
            next_t = max(next_t + period, time.monotonic())
            await asyncio.sleep(next_t - time.monotonic())

    async def _guarded(self, coro: object) -> None:
        """Run a request; an exception reply is reported, a lost link raised."""
        try:
            await coro  # type: ignore[misc]
        except PlcRefusedError as err:
            self._error(err, read=True)

    async def _send_loop(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._send_batch()

    def _drop_commands(self) -> None:
        if self._commands:
            names = ", ".join(rm.PackMLCommand(c).name for c in self._commands)
            self._commands.clear()
            with self._lock:
                self._s.last_error += f"; PackML command(s) {names} dropped: link down"

    def _drop_late(self) -> None:
        """Refuse queued pulses that can no longer make their deadline."""
        if not self._queue:
            return
        with self._lock:
            keep = self._s.deadline_mask([r[3] for r in self._queue], time.monotonic(), self.config)
        kept = [r for r, ok in zip(self._queue, keep, strict=True) if ok]
        dropped = len(self._queue) - len(kept)
        self._queue = deque(kept)
        if dropped:
            self._resolve(late=dropped)

    def _take_batch(self) -> list[Row]:
        self._drop_late()
        s = self._s
        room = rm.RING_SLOTS - s.next_seq % rm.RING_SLOTS  # stay contiguous in the ring
        batch: list[Row] = []
        while self._queue and len(batch) < min(rm.RECORDS_PER_WRITE, room):
            row = self._queue.popleft()
            if not s.fits(row):
                self._resolve(invalid=1)
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
        self._inflight = batch
        self._resolve(sent=len(batch))
        t_sent = time.monotonic()
        try:
            ack = await self._link.write_read(
                rm.slot_address(seq0), words, rm.HR_ACK_BASE, rm.HR_ACK_WORDS
            )
        except PlcRefusedError as err:
            await self._refused(err, seq0, len(batch))
            return
        deadline = time.monotonic() + 5 * self.config.timeout_s
        while not self._settle_acked(ack, t_sent):
            if time.monotonic() > deadline:  # a real PLC takes them on a later scan
                raise LinkDownError(f"PLC did not take ring records from seq {seq0} in time")
            await asyncio.sleep(0.001)
            t_sent = time.monotonic()
            ack = await self._link.read_holding(rm.HR_ACK_BASE, rm.HR_ACK_WORDS)

    def _settle_acked(self, ack: list[int], t_s: float) -> bool:
        """Resolve the in-flight records the PLC has taken (per the HR 100..
        block ``ack``); True when none is left."""
        rows = self._inflight
        with self._lock:
            seq0 = self._s.next_seq
            taken, results = self._s.apply_ack(ack, seq0, len(rows), t_s)
            self._s.next_seq = rm.seq_add(seq0, taken)
        bad = (rm.SlotResult.LATE, rm.SlotResult.NOT_READY, rm.SlotResult.EMPTY)
        ok = sum(1 for r in results if r not in bad)
        self._resolve(acked=ok, rejected_by_plc=len(results) - ok)
        self._inflight = rows[taken:]
        return not self._inflight

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
        self._error(
            PlcRefusedError(f"{err} (ring seq {seq0}..{rm.seq_add(seq0, n - 1)}){why}", err.code),
            read=False,
        )
        self._inflight = []
        self._resolve(rejected_by_plc=n)
        await self._read_status()
        with self._lock:
            self._s.next_seq = rm.seq_add(self._s.acked_seq, 1)
