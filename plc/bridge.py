"""``PlcBridge``: sortline's only way to move a valve (plc/REGISTERS.md).

The bridge runs on its own asyncio loop in a daemon thread
(``core.aio.LoopThread``). The real-time loop hands it ``Pulses`` with
``submit`` (``loop.call_soon_threadsafe``; it never waits) and reads
``snapshot()``, ``encoder_samples()`` and ``trigger_latches()``. On the loop:
- a heartbeat write every ``heartbeat_s`` and a status read (IR 0..94) at
  least as often, at once on ``request_poll``;
- PackML commands written as soon as they are given, one at a time: each is
  followed by status reads until the PLC reports it evaluated (IR 92-94),
  and its outcome is logged (``command_log``);
- a sender (``bridge_pulses.PulseSender``) that writes queued pulses into
  the PLC's ring, up to 15 records per FC 23 request that also reads back
  the acknowledgement block;
- a pulse whose ``on_tick`` minus the lead (``deadline_lead_ms`` at the
  current belt speed) is not ahead of the PLC's encoder as estimated now
  (last reading + speed x elapsed) is refused and counted (``pulses_late``);
- on a lost link: bounded exponential reconnect; records whose fate is
  unknown are resolved from the PLC's acknowledgement after reconnecting
  (same ``boot_id``) or sent again (the PLC restarted).
Every reply that carries the encoder count adds a timestamped sample; every
status read adds the trigger latches not seen before.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable

import numpy as np

from core.aio import LoopThread
from core.types import Pulses
from plc import regmap as rm
from plc.bridge_config import BridgeConfig, PlcStatus
from plc.bridge_history import (
    COMMANDS_KEPT,
    SAMPLES_KEPT,
    CommandOutcome,
    EncoderSamples,
    LatchTracker,
    RingColumns,
    TriggerLatches,
    command_result_text,
)
from plc.bridge_latency import ACK_BUCKETS_S, LatencyHistogram
from plc.bridge_pulses import PulseSender
from plc.bridge_state import BridgeCounters, Session, decode_cycles, decode_status
from plc.link import Link, LinkError, LinkParams, ModbusLink, PlcRefusedError

__all__ = [
    "BridgeConfig", "CommandOutcome", "EncoderSamples", "PlcBridge", "PlcStatus",
    "TriggerLatches",
]  # fmt: skip

CYCLES_PERIOD_S = 1.0
COMMAND_WAIT_S = 0.25  # how long a command's evaluation (IR 94 moving) is awaited
_LATCH = rm.reg("trigger_latch")


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
                config.tls,
            )
        )  # fmt: skip
        self._lt = LoopThread("plc-bridge", rt_priority=config.rt_priority)
        self._lock = threading.Lock()
        self._resolved_cv = threading.Condition(self._lock)
        self._polled_cv = threading.Condition(self._lock)
        self._c = BridgeCounters()
        self._s = Session(config.mm_per_tick, config.deadline_lead_ms)
        self._samples = RingColumns(SAMPLES_KEPT, (np.float64, np.int64, np.float64))
        self._latches = LatchTracker()
        self._outcomes: deque[CommandOutcome] = deque(maxlen=COMMANDS_KEPT)
        self._polls_started = self._polls_done = 0
        self.ack_latency = LatencyHistogram(ACK_BUCKETS_S)
        """Per batch of ring records, write request -> settling acknowledgement (s)."""
        self._pulses = PulseSender(
            config, self._link, self._s, self._c, self._resolved_cv,
            report=lambda err: self._error(err, read=False),
            read_status=self._read_status, on_encoder=self._add_sample,
            ack_latency=self.ack_latency,
        )  # fmt: skip
        self._commands: deque[int] = deque()
        self._cmd_reports: bool | None = None  # does this PLC fill IR 92-94?
        self._drop_note = ""  # commands dropped while down: kept in last_error until up
        self._poll_wake = asyncio.Event()  # command or poll requested (binds to the loop)
        self._next_beat_s = 0.0
        self._main_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._connected_evt = threading.Event()

    # ---- public, any thread ----------------------------------------------
    def start(self) -> None:
        """Start the loop thread; returns immediately (see ``wait_connected``)."""
        if self._main_task is not None:
            raise RuntimeError("PlcBridge already started")
        self._lt.start()
        if self._lt.priority_error:
            with self._lock:
                self._s.last_error = self._lt.priority_error
        self._main_task = self._lt.run(self._spawn(), 5.0)

    @property
    def started(self) -> bool:
        """``start`` was called: the bridge is trying to reach the PLC."""
        return self._main_task is not None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop heartbeats and close the link (the PLC's watchdog then trips)."""
        self._stopping = True
        task = self._main_task
        if task is not None and self._lt.running:
            with contextlib.suppress(RuntimeError, TimeoutError):
                self._lt.run(self._cancel(task, timeout_s), timeout_s + 1.0)
        self._lt.stop(timeout_s)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected_evt.wait(timeout_s)

    def submit(self, pulses: Pulses) -> None:
        """Queue ``pulses`` for the PLC; never blocks."""
        if not len(pulses):
            return
        self._require_running("submit")
        with self._lock:
            self._c.submitted += len(pulses)
        self._lt.call_soon(self._pulses.enqueue, pulses)

    def command(self, cmd: rm.PackMLCommand) -> None:
        """Write a PackML command (HR 2) as soon as the loop can; never blocks.
        Its fate goes to ``command_log``. A command given while the link is down
        is dropped ("dropped: link down", also in ``last_error``): an operator's
        Start must not fire minutes later."""
        self._require_running("command")
        self._lt.call_soon(self._enqueue_command, int(cmd))

    def request_poll(self) -> None:
        """Ask for a status read now (encoder sample, trigger latches); never blocks."""
        self._require_running("request_poll")
        self._lt.call_soon(self._poll_wake.set)

    def poll_now(self, timeout_s: float) -> bool:
        """Block until a status read that started after this call has completed;
        False on timeout (link down). For stepped simulation and tests; never
        from the bridge's own loop."""
        with self._lock:
            target = self._polls_started + 1
        self.request_poll()
        with self._polled_cv:
            return self._polled_cv.wait_for(lambda: self._polls_done >= target, timeout_s)

    def flush(self, timeout_s: float) -> bool:
        """Block until every pulse submitted so far was acknowledged or refused.
        For stepped simulation and tests only."""
        with self._resolved_cv:
            target = self._c.submitted
            return self._resolved_cv.wait_for(lambda: self._c.resolved >= target, timeout_s)

    def set_line_params(self, *, mm_per_tick: float, deadline_lead_ms: float) -> None:
        """Replace what the deadline check uses (encoder scale, valve delay +
        margin), e.g. when a calibration is activated; thread-safe. ValueError
        unless mm_per_tick > 0 and deadline_lead_ms >= 0."""
        with self._lock:
            self._s.set_params(mm_per_tick, deadline_lead_ms)

    def estimate_tick(self, now_s: float | None = None) -> int | None:
        """The PLC's encoder count now (uint32), extrapolated from the last read."""
        with self._lock:
            return self._s.estimate_tick(time.monotonic() if now_s is None else now_s)

    def encoder_samples(self) -> EncoderSamples:
        """The last ~256 encoder readings with their times (a copy)."""
        with self._lock:
            t_s, tick, rtt_s = self._samples.columns()
        return EncoderSamples(t_s=t_s, tick=tick, rtt_s=rtt_s)

    def trigger_latches(self) -> TriggerLatches:
        """The last ~512 camera-trigger latches of this PLC boot (a copy)."""
        with self._lock:
            seq, tick, t_read_s = self._latches.ring.columns()
        return TriggerLatches(seq=seq, tick=tick, t_read_s=t_read_s)

    def command_log(self) -> tuple[CommandOutcome, ...]:
        """The last ~32 command outcomes, oldest first."""
        with self._lock:
            return tuple(self._outcomes)

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
                pulses_stale=c.stale,
                reconnects=c.reconnects, read_errors=c.read_errors,
                plc_counters=dict(s.plc_counters), valve_cycles=s.valve_cycles,
                t_s=time.monotonic(), trigger_seq=s.trigger_seq,
                trigger_latches_missed=self._latches.missed, mm_per_tick=s.mm_per_tick,
                deadline_lead_ms=s.deadline_lead_ms, params_version=s.params_version,
                last_command=str(self._outcomes[-1]) if self._outcomes else "",
            )  # fmt: skip

    def _require_running(self, what: str) -> None:
        if self._stopping or not self._lt.running:
            raise RuntimeError(f"PlcBridge.{what}: bridge not running")

    # ---- loop side: life cycle -------------------------------------------
    async def _spawn(self) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self._run_main(), name="plc-bridge")

    async def _cancel(self, task: asyncio.Task[None], timeout_s: float) -> None:
        """Cancel ``task`` and wait for it; cancel again while it runs on: on
        Python 3.11, ``asyncio.wait_for`` (pymodbus awaits every reply with it)
        drops a cancel that lands with the reply (CPython gh-86296)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not task.done() and loop.time() < end:
            task.cancel()
            await asyncio.wait([task], timeout=0.05)
        await asyncio.sleep(0)  # let closed transports finish

    async def _run_main(self) -> None:
        try:
            await self._main()
        finally:
            self._link.close()
            with self._lock:
                self._s.connected = False
            self._connected_evt.clear()

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
            self._pulses.drop_late()
            await asyncio.sleep(backoff_s)  # new pulses do not cut the backoff short
            backoff_s = min(backoff_s * 2, self.config.reconnect_max_s)

    async def _on_connect(self) -> None:
        boot_before = self._s.boot_id
        await self._read_status()
        if self.config.watchdog_ms is not None:
            await self._link.write_holding(rm.HR_WATCHDOG_MS, [int(self.config.watchdog_ms)])
        if self.config.trigger_every_ticks is not None:
            await self._link.write_holding(rm.HR_TRIGGER_EVERY, [self.config.trigger_every_ticks])
        same = self._s.boot_id == boot_before
        await self._pulses.on_connect(same_boot=same, restarted=boot_before != -1 and not same)
        with self._lock:
            self._s.next_seq = rm.seq_add(self._s.acked_seq, 1)
            self._s.connected = True
            self._drop_note = ""
        self._connected_evt.set()

    async def _session(self) -> None:
        tasks = [asyncio.ensure_future(c) for c in (self._poll_loop(), self._pulses.run())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _error(self, err: LinkError, *, read: bool) -> None:
        with self._lock:
            self._s.last_error = str(err) + self._drop_note
            self._c.read_errors += int(read)

    # ---- loop side: heartbeat, status, commands ----------------------------
    async def _poll_loop(self) -> None:
        self._next_beat_s = next_cycles_t = time.monotonic()
        while not self._stopping:
            self._poll_wake.clear()  # a request from now on gets a read of its own
            await self._beat_if_due()
            while self._commands:
                await self._send_command()
            await self._guarded(self._read_status())
            if time.monotonic() >= next_cycles_t:  # valve wear: once per CYCLES_PERIOD_S
                next_cycles_t = time.monotonic() + CYCLES_PERIOD_S
                await self._guarded(self._read_cycles())
            wait_s = self._next_beat_s - time.monotonic()
            if wait_s > 0 and not self._poll_wake.is_set() and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poll_wake.wait(), wait_s)

    async def _beat_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_beat_s:
            return
        self._next_beat_s = max(self._next_beat_s + self.config.heartbeat_s, now)
        with self._lock:
            self._s.heartbeat = (self._s.heartbeat + 1) & 0xFFFF
            hb = self._s.heartbeat
        await self._link.write_holding(rm.HR_HEARTBEAT, [hb])

    async def _guarded(self, coro: Awaitable[None]) -> None:
        """Run a request; an exception reply is reported, a lost link raised."""
        try:
            await coro
        except PlcRefusedError as err:
            self._error(err, read=True)

    async def _read_status(self) -> None:
        with self._lock:
            self._polls_started += 1
            poll_id = self._polls_started
        # the count was sampled no earlier than the request left: stamping it with
        # the send time keeps the estimate ahead of the encoder, never behind
        t_sent = time.monotonic()
        words = await self._link.read_input(0, rm.IR_STATUS_WORDS)
        t_recv = time.monotonic()
        with self._polled_cv:
            boot_before = self._s.boot_id
            decode_status(self._s, words, t_sent)
            if self._s.boot_id != boot_before:  # a PLC (re)start: its history is gone
                self._samples.clear()
                self._latches.reset()
                self._cmd_reports = None
            self._add_sample(t_sent, t_recv)
            self._latches.update(self._s.trigger_seq, words[_LATCH.address : _LATCH.end], t_recv)
            self._polls_done = max(self._polls_done, poll_id)
            self._polled_cv.notify_all()

    def _add_sample(self, t_sent: float, t_recv: float) -> None:
        """The count just read (lock held): valid at the midpoint of the round trip."""
        if self._s.tick is not None:
            self._samples.append((t_sent + t_recv) / 2, self._s.tick, t_recv - t_sent)

    async def _read_cycles(self) -> None:
        words: list[int] = []
        total = 2 * self._s.n_valves
        for start in range(0, total, 124):  # 62 valves per request
            count = min(124, total - start)
            words += await self._link.read_input(rm.IR_VALVE_CYCLES_BASE + start, count)
        with self._lock:
            self._s.valve_cycles = decode_cycles(words)

    def _enqueue_command(self, code: int) -> None:
        self._commands.append(code)
        if self._s.connected:
            self._poll_wake.set()
        else:
            self._drop_commands()

    def _drop_commands(self) -> None:
        if not self._commands:
            return
        names = [rm.PackMLCommand(c).name for c in self._commands]
        self._commands.clear()
        with self._lock:
            self._drop_note = f"; PackML command(s) {', '.join(names)} dropped: link down"
            self._s.last_error += self._drop_note
        for name in names:
            self._log_outcome(name, "dropped: link down")

    def _log_outcome(self, name: str, result: str) -> None:
        with self._lock:
            self._outcomes.append(CommandOutcome(name, time.time(), result))

    async def _send_command(self) -> None:
        """Write the first queued command and learn what the PLC made of it."""
        code = self._commands[0]
        name = rm.PackMLCommand(code).name
        with self._lock:
            count0 = self._s.command_count
        try:
            await self._link.write_holding(rm.HR_COMMAND, [code])
        except PlcRefusedError as err:
            self._commands.popleft()
            self._error(err, read=False)
            self._log_outcome(name, f"error: {err}")
            return
        self._commands.popleft()  # delivered: no longer "dropped" if the link fails now
        result = "sent"
        try:
            result = await self._evaluation(code, count0)
        finally:
            self._log_outcome(name, result)

    async def _evaluation(self, code: int, count0: int) -> str:
        """Status reads until IR 94 moves past ``count0``; the outcome text."""
        deadline = time.monotonic() + COMMAND_WAIT_S
        while True:
            try:
                await self._read_status()
            except PlcRefusedError as err:
                self._error(err, read=True)
                return "sent"
            with self._lock:
                s = self._s
                count, last, state = s.command_count, s.last_command, s.state
                result = s.command_result
            if count != count0:
                self._cmd_reports = True
                # another client's command evaluated after ours: ours is unknown
                return command_result_text(result, state) if last == code else "sent"
            if self._cmd_reports is False or time.monotonic() >= deadline:
                if self._cmd_reports is None:
                    self._cmd_reports = False  # this PLC does not fill IR 92-94
                return "sent"
            await self._beat_if_due()
            await asyncio.sleep(0.002)
