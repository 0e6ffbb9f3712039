"""The frame loop: the one real-time path, whatever the camera and the PLC.

One cycle: read the camera (``CameraLink``) -> give the frame its encoder
count (``timebase``) -> vision -> control -> pulses handed to the PLC bridge
without waiting -> listeners -> the line state from this cycle's PLC view and
the loop's own causes -> a status snapshot (at most every ``publish_s``).

A frame that cannot be used is dropped and counted, never queued: lost
(camera counter gaps), malformed, or without an encoder count. The virtual
plant is not known here: it is a camera (a frame ring) and a PLC (a Modbus
server) like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from control.controller import Controller
from core.frame import Frame, FrameError
from core.ticks import tick_diff
from core.types import Detections, Pulses, Tracks
from plc.bridge import PlcBridge, PlcStatus
from plc.regmap import PackMLState
from sortline.camera_link import CameraLink
from sortline.listeners import Cycle, Listener
from sortline.metrics import LatencyWindow
from sortline.state import Conditions, LineStateMachine
from sortline.timebase import EncoderWatch, TimeBase
from vision.pipeline import VisionPipeline
from vision.pipelined import PipelinedVision

__all__ = ["FrameLoop"]

log = logging.getLogger("sortline.loop")

UNTIMED_IN_A_ROW = 20  # frames without an encoder count before the line holds on it
FAILED_IN_A_ROW = 3  # cycles failing in a row (a bug, a broken model) before it holds


class FrameLoop:
    """Owns the cycle's counters; ``SortingLine`` assembles and runs it.

    stepped: simulation that waits for the PLC (the encoder stands still
    between frames: "now" is the frame's count, not an extrapolation).
    before_cycle: called first in every cycle on the loop's thread (the line
    applies a newly activated calibration there).
    """

    def __init__(
        self,
        camera: CameraLink,
        timebase: TimeBase,
        vision: VisionPipeline,
        controller: Controller,
        bridge: PlcBridge,
        state: LineStateMachine,
        *,
        stepped: bool,
        nominal_speed_mm_s: float,
        pipelined: PipelinedVision | None = None,
        before_cycle: Callable[[], None] | None = None,
        publish: Callable[[PlcStatus], None] | None = None,
    ) -> None:
        self.camera = camera
        self.timebase = timebase
        self.vision = vision
        self.controller = controller
        self.bridge = bridge
        self.state = state
        self.stepped = stepped
        self.nominal_speed_mm_s = nominal_speed_mm_s
        self.pipelined = pipelined
        self.before_cycle = before_cycle
        self.publish = publish
        self.listeners: list[Listener] = []
        self.latency_ms = LatencyWindow()
        self.frames = 0
        self.frames_untimed = 0
        self.frames_bad = 0  # failed Frame checks after the camera's (should stay 0)
        self.pulses_handed = 0
        self.live_tracks = 0
        self.class_counts: np.ndarray = np.zeros(0, dtype=np.int64)
        self._live_class: dict[int, int] = {}
        self._untimed_in_row = 0
        self._untimed_why = ""
        self.cycle_errors = 0
        self._failed_in_row = 0
        self._failure = ""
        self._encoder_resets = 0
        self._in_flight_arrival = 0.0
        self._timebase_key: tuple[int, int] | None = None
        self.encoder = EncoderWatch()

    # ------------------------------------------------------------------ loop
    def attach(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def run(self, stop: threading.Event, period_s: float) -> None:
        """The real-time thread: cycles until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.cycle(timeout_s=max(2 * period_s, 0.05))
                self._failed_in_row = 0
            except Exception as exc:  # the loop outlives a bad cycle, and says so
                self.cycle_errors += 1
                self._failed_in_row += 1
                self._failure = f"{type(exc).__name__}: {exc}"
                if self._failed_in_row in (1, 10, 100) or self._failed_in_row % 1000 == 0:
                    log.exception("frame loop cycle failed (%d in a row)", self._failed_in_row)

    @property
    def frames_dropped(self) -> int:
        cam = self.camera
        bad = cam.frames_bad + cam.frames_out_of_order
        return cam.frames_lost + bad + self.frames_untimed + self.frames_bad

    def holds(self) -> tuple[str, ...]:
        causes = []
        if self._failed_in_row >= FAILED_IN_A_ROW:
            causes.append(f"frame loop failing: {self._failure}")
        if self.camera.problem:
            causes.append(self.camera.problem)
        if self._untimed_in_row >= UNTIMED_IN_A_ROW:
            causes.append(f"no encoder count for the frames: {self._untimed_why}")
        if self.encoder.stuck:
            causes.append(self.encoder.stuck)
        return tuple(causes)

    def observe(self, plc: PlcStatus) -> PackMLState:
        try:
            plc_state: PackMLState | None = PackMLState(plc.state)
        except ValueError:
            plc_state = None
        nominal = self.nominal_speed_mm_s
        self._watch_encoder(plc)
        return self.state.observe(
            Conditions(
                plc_linked=bool(plc.connected),
                plc_state=plc_state if plc.connected else None,
                estop=bool(plc.estop),
                belt_running=plc.speed_mm_s > 0.02 * nominal or not plc.connected,
                holds=self.holds(),
            )
        )

    def cycle(self, timeout_s: float) -> bool:
        """One frame (or a wait for one). True when a frame was processed."""
        if self.before_cycle is not None:
            self.before_cycle()
        raw = self.camera.read(timeout_s)
        t_arrival = time.monotonic()
        if raw is None:
            self._idle()
            return False
        self._restart_timebase_if_needed()
        stamp = self.timebase.stamp(raw)
        if stamp.tick is None:
            self.frames_untimed += 1
            self._untimed_in_row += 1
            self._untimed_why = stamp.why
            self._idle()
            return False
        self._untimed_in_row = 0
        try:
            frame = Frame(raw.image, raw.counter, stamp.tick, raw.t_s)
        except FrameError as exc:
            self.frames_bad += 1
            log.error("frame rejected: %s", exc)
            self._idle()
            return False
        plc = self.bridge.snapshot()  # one PLC view per cycle: conditions and status
        state = self.observe(plc)
        detected = self._detect(frame, t_arrival)
        if detected is None:  # the first pipelined frame: nothing back yet
            self._publish(plc)
            return True
        dets, t_detected = detected
        tracks, pulses = self.controller.update(dets, self._now_tick(frame, plc))
        self._note_encoder_reset(frame)
        sent = pulses if state is PackMLState.EXECUTE else Pulses.empty()
        if len(sent):
            self.bridge.submit(sent)
            self.pulses_handed += len(sent)
        self.frames += 1
        latency_ms = (time.monotonic() - t_detected) * 1e3
        self.latency_ms.add(latency_ms)
        self._count_classes(tracks)
        self.live_tracks = len(tracks)
        cycle = Cycle(frame, dets, tracks, sent, state, time.time(), latency_ms)
        for listener in self.listeners:
            listener.on_cycle(cycle)
        self._publish(plc)
        return True

    # --------------------------------------------------------------- helpers
    def _restart_timebase_if_needed(self) -> None:
        """A reopened camera restarts its frame counter; a restarted PLC its
        trigger numbers and its encoder count: either way the frame/trigger
        match is found afresh, and after a PLC restart tracking too."""
        key = (self.camera.reconnects, self.bridge.snapshot().boot_id)
        last, self._timebase_key = self._timebase_key, key
        if last is None or key == last:
            return
        self.timebase.reset()
        if key[1] != last[1] and last[1] != -1:  # a PLC restart: a new count space
            self.controller.new_count_space()

    def _watch_encoder(self, plc: PlcStatus) -> None:
        """A count standing while the belt runs holds the line (``holds``); one
        that jumped further than the belt can run starts a new count space:
        tracks and committed intervals refer to places it no longer names.
        Not in stepped simulation: there the count moves with the frames, not
        with the clock (it stands while nobody steps the plant)."""
        if self.stepped:
            return
        tick = plc.encoder_tick if plc.connected else None
        mm = plc.mm_per_tick
        if self.encoder.observe(tick, plc.encoder_t_s, plc.speed_mm_s, mm, plc.boot_id):
            self.controller.new_count_space()
            self.timebase.reset()
            log.warning(
                "encoder count jumped by %d ticks (at %d): tracking restarted on the new count",
                self.encoder.last_jump_ticks, tick,
            )  # fmt: skip

    def _idle(self) -> None:
        plc = self.bridge.snapshot()
        self.observe(plc)
        self._publish(plc)

    def _publish(self, plc: PlcStatus) -> None:
        if self.publish is not None:
            self.publish(plc)

    def _now_tick(self, frame: Frame, plc: PlcStatus) -> int:
        """The encoder count now: the bridge's estimate from the PLC's last
        reading and the measured speed (never before the frame's own count)."""
        if self.stepped:
            return int(frame.tick)
        est = self.bridge.estimate_tick()
        if est is None or tick_diff(est, int(frame.tick)) < 0:
            return int(frame.tick)
        return int(est)

    def _detect(self, frame: Frame, t_arrival: float) -> tuple[Detections, float] | None:
        """This cycle's detections and the arrival time of the frame they are of
        (pipelined: the previous frame's, whose encoder count travels with them)."""
        if self.pipelined is None:
            return self.vision.process(frame), t_arrival
        dets = self.pipelined.push(frame)
        t_prev, self._in_flight_arrival = self._in_flight_arrival, t_arrival
        return None if dets is None else (dets, t_prev)

    def _note_encoder_reset(self, frame: Frame) -> None:
        resets = self.controller.encoder_resets
        if resets != self._encoder_resets:
            self._encoder_resets = resets
            self.timebase.reset()
            log.warning(
                "encoder count jumped back to %d at frame %d (PLC restart or counter reset): "
                "tracks and committed valve intervals dropped, tracking restarted",
                int(frame.tick), frame.frame_id,
            )  # fmt: skip

    def set_classes(self, names: Sequence[str]) -> None:
        self.class_counts = np.zeros(len(names), dtype=np.int64)

    def _count_classes(self, tracks: Tracks) -> None:
        """Composition: a confirmed track's class is counted once, when it ends."""
        confirmed = tracks.state >= 1
        now = dict(
            zip(
                tracks.track_id[confirmed].tolist(),
                tracks.class_id[confirmed].tolist(),
                strict=True,
            )
        )
        for tid, cls in self._live_class.items():
            if tid not in now and 0 <= cls < len(self.class_counts):
                self.class_counts[cls] += 1
        self._live_class = now
