"""The running line: parts, threads and the real-time loop.

Threads (STYLE.md point 7):
- camera: the virtual plant (or a real source) produces frames into a
  one-slot mailbox; a late frame replaces the waiting one and is counted;
- real-time loop: frame -> vision -> control -> pulses handed to the bridge
  without waiting; publishes a read-only status snapshot every frame;
- PLC bridge: its own asyncio loop (plc/bridge.py);
- virtual PLC: a real Modbus TCP server on loopback (sim/vplc/server.py);
- the status API (uvicorn) reads only published snapshots.

In stepped mode (tests, benchmarks) there is no camera thread: ``run_frames``
renders, processes and waits for the PLC's acknowledgement frame by frame, so
the physics and the figures do not depend on how busy the machine is.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from calibration.camera_model import CameraModel
from calibration.geometry import LineGeometry
from control.recipe import parse_recipe
from core.frame import Frame, FrameError
from core.types import Detections, Tracks
from plc.bridge import PlcStatus
from sortline.config import LineConfig, records_dir
from sortline.metrics import LatencyWindow, Mailbox
from sortline.parts import LineParts, build_parts
from sortline.records import RecordWriter
from sortline.state import Command, Conditions, LineStateMachine, PackMLState
from sortline.warmup import warm_up
from vision.pipelined import PipelinedVision

log = logging.getLogger("sortline.runtime")

CAMERA_STALL_PERIODS = 20  # frames missed in a row before the camera counts as stalled
QUALITY_EVERY_FRAMES = 50  # live purity/recovery from the plant's ground truth, this often


class SortingLine:
    """One line: build with a config, ``start()``, then ``stop()``."""

    def __init__(
        self,
        cfg: LineConfig,
        *,
        stepped: bool = False,
        plc_port: int | None = None,
        scenario: str | None = None,
        seed: int | None = None,
        records: bool | None = None,
        pipelined: bool | None = None,
    ) -> None:
        self.cfg = cfg
        self.stepped = stepped
        self.parts: LineParts = build_parts(
            cfg, plc_port=plc_port, scenario=scenario, seed=seed, stepped=stepped
        )
        self.state = LineStateMachine()
        keep_records = cfg.records.enabled if records is None else records
        self.records: RecordWriter | None = None
        if keep_records:
            self.records = RecordWriter(
                records_dir(cfg),
                cfg.line.name,
                self.parts.class_names,
                self.parts.recipe.fraction_names,
            )
        self.latency_ms = LatencyWindow()
        self.mailbox: Mailbox[tuple[Frame, float]] = Mailbox()
        self._stop = threading.Event()
        self._pending_geometry: tuple[LineGeometry, CameraModel] | None = None
        self._recipe_switch: tuple[str | None, float | None] = (None, None)
        self._threads: list[threading.Thread] = []
        self._status: dict[str, Any] = {}
        self._status_lock = threading.Lock()
        self.frames = 0
        self.frames_bad = 0
        self._live_tracks = 0
        self._encoder_resets = 0
        self.warm_up_s: float | None = None  # wall-clock runs: kernel warm-up before start
        self.frame_gaps = 0
        self._last_frame_id: int | None = None
        self._last_frame_mono = time.monotonic()
        self._class_counts = np.zeros(len(self.parts.class_names), dtype=np.int64)
        self._live_class: dict[int, int] = {}
        self.started_unix_s = time.time()
        self._quality: dict[str, Any] = {}
        self._seen_window: deque[tuple[float, int]] = deque(maxlen=600)
        # two threads for vision: by default in wall-clock runs, never stepped
        if pipelined is None:
            pipelined = cfg.vision.pipelined and not stepped
        self._pipelined: PipelinedVision | None = None
        if pipelined:
            self._pipelined = PipelinedVision(self.parts.vision)
        self._in_flight_arrival = 0.0
        self._publish(self.parts.bridge.snapshot())

    # ------------------------------------------------------------------ life
    def start(self, connect_timeout_s: float = 5.0) -> None:
        if not self.stepped:  # compile before the first frame, not during the run
            self._warm_up()
        self.parts.start_plc()
        self.parts.bridge.start()
        if not self.parts.bridge.wait_connected(connect_timeout_s):
            log.warning("PLC not reachable yet; the line starts Held and keeps trying")
        self.state.command(Command.RESET, who="start-up")
        self.state.command(Command.START, who="start-up")
        if self.parts.calibration is not None:
            self._spawn("calibration-watch", self._watch_calibration)
        if not self.stepped:
            self._spawn("rt-loop", self._rt_loop)
            if self.parts.plant is not None:
                self._spawn("camera", self._camera_loop)

    def _warm_up(self) -> None:
        parts = self.parts
        done = warm_up(
            parts.geometry, parts.classifier, parts.recipe, parts.class_names,
            self.cfg.control.deadline_margin_ms, parts.vision.camera_model,
        )  # fmt: skip
        self.warm_up_s = done.seconds
        log.info(
            "kernels ready in %.1f s (throw-away run: %d detections, %d pulses)",
            done.seconds, done.detections, done.pulses,
        )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        self.mailbox.close()
        for t in self._threads:
            t.join(timeout=5.0)
        if self._pipelined is not None:
            self._pipelined.close()
        self.parts.close()
        if self.records is not None:
            self.records.close()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    # ----------------------------------------------------------- stepped run
    def run_frames(self, n_frames: int, ack_timeout_s: float = 2.0) -> None:
        """Stepped mode: render, process and deliver ``n_frames`` frames."""
        plant = self.parts.plant
        if not self.stepped or plant is None:
            raise RuntimeError("run_frames needs a stepped line on the virtual plant")
        for _ in range(n_frames):
            frame = plant.step()
            self._score_plant(frame.frame_id)
            self.process(frame, ack_timeout_s)

    def process(self, frame: Frame, ack_timeout_s: float = 2.0) -> None:
        """Stepped mode: one frame through vision and control, then wait until the
        PLC has acknowledged its pulses (the plant does not move meanwhile)."""
        self._process(frame, time.monotonic())
        if not self.parts.bridge.flush(ack_timeout_s):
            log.warning("PLC did not acknowledge within %.1f s", ack_timeout_s)

    # -------------------------------------------------------------- threads
    def _camera_loop(self) -> None:
        plant = self.parts.plant
        assert plant is not None
        period_s = 1.0 / self.cfg.camera.fps
        t_next = time.monotonic()
        while not self._stop.is_set():
            frame = plant.step()
            self.mailbox.put((frame, time.monotonic()))
            self._score_plant(frame.frame_id)
            t_next += period_s
            lag_s = time.monotonic() - t_next
            if lag_s < 0:
                time.sleep(-lag_s)
            elif lag_s > 0.5:  # far behind: resynchronise instead of bursting
                t_next = time.monotonic()

    def _watch_calibration(self) -> None:
        """Looks for a newly activated (or rolled back) calibration; the
        real-time loop applies it at the start of its next cycle."""
        while not self._stop.wait(self.cfg.calibration.poll_s):
            self.poll_calibration_now()

    def poll_calibration_now(self) -> None:
        """Take a newly activated calibration (watcher thread; tests call it
        directly). A damaged or unfitting one is refused and reported in the
        status, and the line keeps the one it has."""
        live = self.parts.calibration
        if live is not None and live.poll():
            self._pending_geometry = (live.geometry, live.camera_model)

    def _take_calibration(self) -> None:
        pending, self._pending_geometry = self._pending_geometry, None
        if pending is not None:
            self.parts.apply_geometry(*pending)
            log.warning("calibration applied: %s", self.parts.calibration_status())

    def _rt_loop(self) -> None:
        period_s = 1.0 / self.cfg.camera.fps
        while not self._stop.is_set():
            item = self.mailbox.get(timeout_s=period_s * 2)
            if item is None:
                plc = self.parts.bridge.snapshot()
                self._observe(plc, camera_ok=self._camera_ok())
                self._publish(plc)
                continue
            frame, t_arrival = item
            try:
                self._process(frame, t_arrival)
            except Exception:  # the loop must outlive one bad cycle
                log.exception("real-time cycle failed on frame %s", frame.frame_id)

    # ---------------------------------------------------------------- cycle
    def _camera_ok(self) -> bool:
        stall_s = CAMERA_STALL_PERIODS / self.cfg.camera.fps
        return time.monotonic() - self._last_frame_mono < stall_s

    def _observe(self, plc: PlcStatus, camera_ok: bool) -> PackMLState:
        """This cycle's conditions. The PLC's latched fault bits are history for
        maintenance (cleared by a PLC Reset); what decides whether it can take
        pulses is its state: only Execute (or Suspended, belt stopped) does."""
        nominal = self.cfg.belt.speed_mm_s
        plc_ready = plc.state in (int(PackMLState.EXECUTE), int(PackMLState.SUSPENDED))
        return self.state.observe(
            Conditions(
                estop=bool(plc.estop),
                plc_linked=bool(plc.connected),
                plc_fault=bool(plc.connected) and not plc_ready,
                camera_ok=camera_ok,
                belt_running=plc.speed_mm_s > 0.02 * nominal or not plc.connected,
            )
        )

    def _now_tick(self, frame: Frame, t_arrival: float) -> int:
        """Encoder estimate now: the frame's count plus travel since it arrived."""
        if self.stepped:
            return int(frame.tick)
        elapsed_s = time.monotonic() - t_arrival
        ticks = elapsed_s * self.cfg.belt.speed_mm_s / self.cfg.belt.mm_per_tick
        return (int(frame.tick) + int(ticks)) % (1 << 32)

    def _process(self, frame: Frame, t_arrival: float) -> None:
        self._take_calibration()
        try:
            frame.check_size(self.cfg.camera.width_px, self.cfg.camera.height_px)
        except FrameError as exc:
            self.frames_bad += 1
            log.error("frame rejected: %s", exc)
            self._publish(self.parts.bridge.snapshot())
            return
        if self._last_frame_id is not None and frame.frame_id > self._last_frame_id + 1:
            self.frame_gaps += frame.frame_id - self._last_frame_id - 1
        self._last_frame_id = frame.frame_id
        self._last_frame_mono = time.monotonic()
        plc = self.parts.bridge.snapshot()  # one PLC view per cycle: conditions and status
        state = self._observe(plc, camera_ok=True)
        detected = self._detect(frame, t_arrival)
        if detected is None:  # the first pipelined frame: nothing back yet
            self._publish(plc)
            return
        dets, t_detected = detected
        tracks, pulses = self.parts.controller.update(dets, self._now_tick(frame, t_arrival))
        self._note_encoder_reset(frame)
        if len(pulses) and state is PackMLState.EXECUTE:
            self.parts.bridge.submit(pulses)
            if self.records is not None:
                self.records.offer(pulses, tracks)
        self.frames += 1
        self.latency_ms.add((time.monotonic() - t_detected) * 1e3)
        self._count_classes(tracks)
        self._live_tracks = len(tracks)
        self._publish(plc)

    def _note_encoder_reset(self, frame: Frame) -> None:
        resets = self.parts.controller.encoder_resets
        if resets != self._encoder_resets:
            self._encoder_resets = resets
            log.warning(
                "encoder count jumped back to %d at frame %d (PLC restart or counter reset): "
                "tracks and committed valve intervals dropped, tracking restarted",
                int(frame.tick), frame.frame_id,
            )  # fmt: skip

    def _detect(self, frame: Frame, t_arrival: float) -> tuple[Detections, float] | None:
        """This cycle's detections and the arrival time of the frame they are of.

        Pipelined, they are the previous frame's (its encoder tick travels with
        them, so control places them correctly); the latency counts from that
        frame's arrival."""
        if self._pipelined is None:
            return self.parts.vision.process(frame), t_arrival
        dets = self._pipelined.push(frame)
        t_prev, self._in_flight_arrival = self._in_flight_arrival, t_arrival
        return None if dets is None else (dets, t_prev)

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
            if tid not in now and 0 <= cls < len(self._class_counts):
                self._class_counts[cls] += 1
        self._live_class = now

    def _score_plant(self, frame_id: int) -> None:
        """Live quality from the virtual plant's ground truth (camera thread only:
        it owns the plant)."""
        plant = self.parts.plant
        if plant is None or frame_id % QUALITY_EVERY_FRAMES:
            return
        score = plant.score(self.parts.recipe.targets()).to_dict()
        keys = ("purity", "recovery", "co_ejection_rate", "objects_ejected")
        self._quality = {k: score.get(k) for k in keys}

    def _throughput_per_min(self, objects_seen: int) -> float | None:
        now = time.monotonic()
        self._seen_window.append((now, objects_seen))
        while self._seen_window and now - self._seen_window[0][0] > 60.0:
            self._seen_window.popleft()
        t0, n0 = self._seen_window[0]
        return None if now - t0 < 1.0 else 60.0 * (objects_seen - n0) / (now - t0)

    # --------------------------------------------------------------- status
    def _publish(self, plc: PlcStatus) -> None:
        stats = self.parts.controller_stats()
        uptime_s = time.time() - self.started_unix_s
        composition = {
            name: int(c) for name, c in zip(self.parts.class_names, self._class_counts, strict=True)
        }
        status = {
            "line": self.cfg.line.name,
            **self._live_fields(),
            "uptime_s": round(uptime_s, 3),
            "frames": self.frames,
            "frames_dropped": self.frames_dropped,
            "live_tracks": self._live_tracks,
            "controller": stats,
            "throughput_per_min": self._throughput_per_min(int(stats.get("objects_seen", 0))),
            "deadline_misses": int(stats.get("deadline_misses", 0))
            + int(getattr(plc, "pulses_late", 0)),
            "quality": self._quality,
            "composition": composition,
            "latency_ms": self.latency_ms.quantiles_ms(),
            "plc": self.parts.plc_status_dict(plc),
            "virtual_plant": self.parts.plant is not None,
            "warm_up_s": self.warm_up_s,
        }
        with self._status_lock:
            self._status = status

    @property
    def frames_dropped(self) -> int:
        """Frames the loop never processed: gaps in the source's frame ids (which
        include frames replaced in the mailbox while the loop was busy) and
        frames rejected as malformed."""
        return self.frame_gaps + self.frames_bad

    def status(self) -> dict[str, Any]:
        """The last published snapshot, with the line state read live (a
        command from the API shows at once, not at the next frame)."""
        with self._status_lock:
            status = dict(self._status)
        status.update(self._live_fields())
        return status

    def _live_fields(self) -> dict[str, Any]:
        """Fields that operators change (state, recipe, calibration): read at
        request time, so a change shows at once rather than at the next frame."""
        return {
            "recipe": self.parts.recipe.name,
            "calibration": self.parts.calibration_status(),
            "state": self.state.state.name,
            "state_code": int(self.state.state),
            "causes": list(self.state.causes),
            "events": [dataclasses.asdict(t) for t in self.state.history()[-30:]],
        }

    def recipe_info(self) -> dict[str, Any]:
        r = self.parts.recipe
        return {
            "name": r.name,
            "version": r.version,
            "source": r.source,
            "targets": r.targets(),
            "thresholds": dict(zip(r.class_names, r.threshold.tolist(), strict=True)),
            "priorities": dict(zip(r.class_names, r.priority.tolist(), strict=True)),
            "switched_by": self._recipe_switch[0],
            "switched_unix_s": self._recipe_switch[1],
        }

    def switch_recipe(self, text: str, who: str) -> dict[str, Any]:
        """Validate a recipe (TOML text) against the model's classes and switch to
        it while running; raises ``InputFileError`` (one line) and keeps the
        current recipe if it is malformed."""
        recipe = parse_recipe(text, f"recipe sent by {who}", self.parts.class_names)
        self.parts.set_recipe(recipe)
        self._recipe_switch = (who, time.time())
        log.warning("recipe %r v%d switched in by %s", recipe.name, recipe.version, who)
        return self.recipe_info()

    def command(self, cmd: Command, who: str) -> PackMLState:
        return self.state.command(cmd, who=who)

    def report(self) -> dict[str, Any]:
        """The JSON summary of DESIGN.md (``sortline run --report``)."""
        from sortline.report import build_report

        return build_report(self)
