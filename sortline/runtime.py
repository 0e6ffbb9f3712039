"""``SortingLine``: one line's parts, threads and public face.

Threads (STYLE.md point 7):
- real-time loop (``sortline.loop.FrameLoop``): camera -> time base ->
  vision -> control -> pulses handed to the bridge without waiting; publishes
  a frozen ``StatusSnapshot``; hands each cycle to its listeners;
- PLC bridge: its own asyncio loop (plc/bridge.py);
- listeners' writer threads (records, plant score, labelling folder);
- calibration watcher: applies a newly activated calibration to the
  controller, vision and bridge together (``sortline.lineparams``);
- on the embedded virtual plant only: the plant's own thread and its PLC's
  Modbus server (sim/plant/runner.py), outside this loop.

Stepped mode (tests, benchmarks) has no real-time thread: ``step`` runs one
cycle, the camera being asked for each frame (a software trigger), and waits
until the PLC has acknowledged its pulses, so the figures do not depend on
how busy the machine is. It runs the same cycle as the real-time thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from control.recipe import Recipe, parse_recipe
from core.rt import check_fifo, set_fifo
from plc.bridge import PlcStatus
from plc.regmap import InputBit
from sortline.alarms import AlarmBook, attach_alarms
from sortline.belt_load import BeltLoadListener
from sortline.camera_link import CameraLink
from sortline.config import LineConfig, records_dir
from sortline.lineparams import LineParams, apply, derive, with_disabled
from sortline.listeners import LabellingListener, RecordsListener, ScoreListener
from sortline.loop import FrameLoop
from sortline.metrics_prom import attach_metrics
from sortline.parts import LineParts, build_parts
from sortline.preview import PreviewGeometry, PreviewTap
from sortline.recipe_library import RecipeLibrary, recipe_text, recipes_dir
from sortline.records import Context, Records, records_from_config
from sortline.state import Command, LineStateMachine, PackMLState, TransitionError
from sortline.status import (
    BeltLoadView,
    Event,
    LatencyMs,
    Quality,
    SensorView,
    StatusSnapshot,
    TimeBaseView,
    report_from,
)
from sortline.valves import OperatorDisable, UnknownValveError, ValveRefusedError, ValveUsage
from sortline.warmup import warm_up
from vision.pipelined import PipelinedVision

log = logging.getLogger("sortline.runtime")

_PLC_ARRIVES = {  # the PLC states an operator command leads to
    Command.START: {int(PackMLState.EXECUTE), int(PackMLState.SUSPENDED), int(PackMLState.HELD)},
    Command.STOP: {int(PackMLState.STOPPED)},
    Command.RESET: {int(PackMLState.IDLE)},
}
PUBLISH_S = 0.05  # wall-clock runs publish a snapshot at most this often
COMMAND_TIMEOUT_S = 3.0


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
        parts = self.parts
        self.state = LineStateMachine()
        self.camera = CameraLink(parts.camera, parts.camera_source, cfg.camera.stall_ms / 1e3)
        if pipelined is None:  # two threads for vision: wall-clock runs only
            pipelined = cfg.vision.pipelined and not stepped
        self.loop = FrameLoop(
            self.camera,
            parts.timebase,
            parts.vision,
            parts.controller,
            parts.bridge,
            self.state,
            stepped=stepped,
            nominal_speed_mm_s=cfg.belt.speed_mm_s,
            pipelined=(
                PipelinedVision(parts.vision, rt_priority=cfg.control.rt_priority)
                if pipelined
                else None
            ),
            before_cycle=self._take_params,
            publish=self._maybe_publish,
        )
        self.loop.set_classes(parts.class_names)
        self.records: Records | None = None  # GET /records (sortline.api_records)
        self._records_ctx: tuple[object, object, Context] | None = None
        if cfg.records.enabled if records is None else records:
            self.records = records_from_config(cfg, parts.class_names, self._pulse_counts)
            self.loop.attach(RecordsListener(self.records, self._records_context))
        self.score: ScoreListener | None = None
        if parts.score_source is not None:
            name = "embedded virtual plant" if parts.plant is not None else cfg.sim.score_url
            self.score = ScoreListener(
                parts.score_source, lambda: self.parts.recipe.targets(), name
            )  # the recipe in use, after a switch too
            self.loop.attach(self.score)
        if cfg.vision.uncertain_dir:
            from vision.labelling import UncertainFolder

            folder = UncertainFolder(cfg.resolve_path(cfg.vision.uncertain_dir))
            self.loop.attach(
                LabellingListener(folder, parts.class_names, cfg.vision.uncertain_below)
            )
        # the line's own state first: the alarm thread below reads it from its start
        self._cal_poll_lock = threading.Lock()  # the watcher and POST /calibration/...
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pending_params: LineParams | None = None
        self._params_lock = threading.Lock()  # _pending_params, _base_params, valves_off
        self._base_params = parts.params  # the calibration's, before operator disables
        self.valves_off: dict[int, OperatorDisable] = {}  # by an operator, kept across calibrations
        self.valve_usage = ValveUsage(cfg.alarms.valve_window_s)  # GET /valves
        self._recipe_switch: tuple[str | None, float | None] = (None, None)
        self._status: StatusSnapshot | None = None
        self._status_lock = threading.Lock()
        self._last_publish = 0.0
        self._seen_window: deque[tuple[float, int]] = deque(maxlen=600)
        self.started_unix_s = time.time()  # for display and the start-time metric
        self._started_mono_s = time.monotonic()  # uptime: immune to wall-clock steps
        self.warm_up_s: float | None = None
        cam_geo, al = parts.geometry.camera, cfg.alarms
        self.belt_load = BeltLoadListener(  # status, /metrics and the belt_overfed alarm
            cam_geo.view_width_mm * cam_geo.view_length_mm, al.load_window_frames,
            al.load_min_segments,
        )  # fmt: skip
        self.loop.attach(self.belt_load)
        self._publish(parts.bridge.snapshot())
        self.alarms: AlarmBook = attach_alarms(self)  # GET /alarms (sortline.api_alarms)
        self.metrics = attach_metrics(self)  # GET /metrics (sortline.api_metrics)
        self.preview = PreviewTap()  # GET /preview.jpg (sortline.api_stream): references only
        self.loop.attach(self.preview)
        self.recipe_library = RecipeLibrary(recipes_dir(cfg), cfg.line.name, parts.class_names)
        self.recipe_library.note_activation(
            parts.recipe, recipe_text(parts.recipe.source), "config", "start-up"
        )  # /recipes/history
        # one audit log per line: the API, MQTT and OPC UA commands all append to it
        from sortline.auth import AuditLog  # fastapi: not for the real-time path's imports

        self.audit = AuditLog.for_line(records_dir(cfg), cfg.line.name)
        self.links: list[Any] = []  # plant links, started and stopped with the line
        if parts.sensor is not None:  # the second sensor's reader ([sensor], sortline/sensor)
            self.links.append(parts.sensor)
            self.alarms.sources.append(parts.sensor.conditions)
        if cfg.mqtt.url:  # Sparkplug B edge node (docs/plant.md)
            from sortline.sparkplug import attach_sparkplug

            self.links.append(attach_sparkplug(self))
        if cfg.opcua.endpoint:  # OPC UA server, PackML
            from sortline.opcua_server import attach_opcua

            self.links.append(attach_opcua(self))

    # ------------------------------------------------------------------ life
    def start(self, connect_timeout_s: float = 5.0) -> None:
        rt = self.cfg.control.rt_priority
        if rt and not self.stepped:  # refused in one line before anything starts
            check_fifo(rt, "control.rt_priority")
        if not self.stepped:  # compile before the first frame, not during the run
            self._warm_up()
        self.parts.start_plant()
        self.parts.bridge.start()
        if not self.parts.bridge.wait_connected(connect_timeout_s):
            log.warning("PLC not reachable yet; the line starts Held and keeps trying")
        else:
            self._wait_heartbeat_seen(connect_timeout_s)
        self.loop.observe(self.parts.bridge.snapshot())
        if self.parts.calibration is not None:
            self._spawn("calibration-watch", self._watch_calibration)
        if not self.stepped:
            period_s = 1.0 / self.cfg.camera.fps
            self._spawn("rt-loop", lambda: self._run_loop(rt, period_s))
        for link in self.links:
            link.start()

    def _wait_heartbeat_seen(self, timeout_s: float) -> None:
        """Until the PLC reports our heartbeat (its watchdog armed and fresh):
        the line is then really in its hands (a plant's feeder interlock, a
        PLC that holds until it sees the controller)."""
        bridge = self.parts.bridge
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if bridge.snapshot().inputs & InputBit.HEARTBEAT_OK:
                return
            bridge.poll_now(0.2)
        log.warning("the PLC does not report the controller's heartbeat (IR 4 bit 2)")

    def _warm_up(self) -> None:
        parts = self.parts
        done = warm_up(
            parts.geometry, parts.classifier, parts.recipe, parts.class_names,
            self.cfg.control.deadline_margin_ms, parts.vision.camera_model,
            parts.controller.params, parts.vision.segmenter,
        )  # fmt: skip
        self.warm_up_s = done.seconds
        log.info(
            "kernels ready in %.1f s (throw-away run: %d detections, %d pulses)",
            done.seconds, done.detections, done.pulses,
        )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        for link in self.links:  # first: the NDEATH goes out while the line still runs
            link.stop()
        self.alarms.close()
        for t in self._threads:
            t.join(timeout=5.0)
        if self.loop.pipelined is not None:
            self.loop.pipelined.close()
        self.camera.close()
        for listener in self.loop.listeners:
            listener.close()
        self.parts.close()

    def _run_loop(self, rt_priority: int, period_s: float) -> None:
        if rt_priority:  # checked in start(): the frame loop's own thread, first thing
            try:
                set_fifo(rt_priority, "control.rt_priority")
            except OSError as exc:  # granted a moment ago: sort on, at normal priority
                log.error("%s; the frame loop runs at normal priority", exc)
        self.loop.run(self._stop, period_s)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    # ----------------------------------------------------------- stepped run
    def step(self, ack_timeout_s: float = 2.0, frame_timeout_s: float = 10.0) -> bool:
        """Stepped mode: ask the camera for one frame, run the cycle, then wait
        until the PLC has acknowledged its pulses. True if a frame was processed."""
        if not self.stepped:
            raise RuntimeError("step() needs a stepped line (SortingLine(..., stepped=True))")
        done = self.loop.cycle(frame_timeout_s)
        if not self.parts.bridge.flush(ack_timeout_s):
            log.warning("PLC did not acknowledge within %.1f s", ack_timeout_s)
        return done

    def run_frames(self, n_frames: int, ack_timeout_s: float = 2.0) -> None:
        """Stepped mode: ``n_frames`` cycles (frames the camera delivers)."""
        for _ in range(n_frames):
            self.step(ack_timeout_s)
        self._publish(self.parts.bridge.snapshot())

    # ---------------------------------------------------------- calibration
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
        with self._cal_poll_lock:
            changed = live is not None and live.poll()
        if live is not None and changed:
            version = live.status().get("version")
            base = derive(
                live.geometry, live.camera_model, self.cfg.control.deadline_margin_ms, version
            )
            with self._params_lock:
                self._base_params = base
                self._pending_params = with_disabled(base, self.valves_off)

    def _take_params(self) -> None:
        if self._pending_params is None:
            return
        with self._params_lock:
            params, self._pending_params = self._pending_params, None
        if params is not None:
            parts = self.parts
            apply(params, parts.controller, parts.vision, parts.bridge)
            parts.params = params
            off = params.geometry.valves.disabled_valves
            log.warning("line params applied: %s, valves disabled %s", params.summary(), off)

    def _pulse_counts(self) -> tuple[int, int, int]:
        """The bridge's pulses: submitted, resolved, failed (records writer thread)."""
        p = self.parts.bridge.snapshot()
        failed = (
            p.pulses_late + p.pulses_rejected_by_plc + p.pulses_invalid + p.pulses_overflow
            + p.pulses_stale
        )  # fmt: skip
        return p.pulses_submitted, p.pulses_acked + failed, failed

    def _records_context(self) -> tuple[Recipe, Context]:
        """The recipe deciding now and the versions behind it (real-time thread:
        a new ``Context`` only when the recipe or calibration changed)."""
        recipe, params = self.parts.recipe, self.parts.params
        got = self._records_ctx
        if got is None or got[0] is not recipe or got[1] is not params:
            info = self.parts.classifier.info
            ctx = Context(recipe.name, recipe.version, self.cfg.vision.model, info.version,
                          params.calibration_version)  # fmt: skip
            got = self._records_ctx = (recipe, params, ctx)
        return recipe, got[2]

    # --------------------------------------------------------------- valves
    def set_valve_enabled(
        self, n: int, enabled: bool, who: str, reason: str = ""
    ) -> OperatorDisable | None:
        """Take valve ``n`` out of service (or back): the real-time loop applies
        it at the start of its next cycle, like a new calibration, and keeps it
        across later calibrations. Returns the valve's operator record (None:
        not disabled by an operator). ``UnknownValveError``: no such valve;
        ``ValveRefusedError``: the last enabled valve, or disabled by the
        calibration (enabling it needs a new calibration)."""
        with self._params_lock:
            base = self._base_params.geometry.valves
            if not 0 <= n < base.n_valves:
                raise UnknownValveError(f"no valve {n}: the bar has valves 0..{base.n_valves - 1}")
            off = dict(self.valves_off)
            if enabled:
                if n in base.disabled_valves:
                    raise ValveRefusedError(f"valve {n} is disabled by the calibration")
                off.pop(n, None)
            elif n not in off:
                if len(set(base.disabled_valves) | set(off) | {n}) >= base.n_valves:
                    raise ValveRefusedError(f"valve {n} is the last enabled valve")
                off[n] = OperatorDisable(who, time.time(), reason)
            if off != self.valves_off:
                self.valves_off = off
                self._pending_params = with_disabled(self._base_params, off)
                log.warning("valve %d %s by %s: %s", n, "enabled" if enabled else "disabled",
                            who, reason or "no reason given")  # fmt: skip
            return off.get(n)

    def calibration_disabled_valves(self) -> tuple[int, ...]:
        """The valves the active (or pending) calibration disabled."""
        return tuple(self._base_params.geometry.valves.disabled_valves)

    # --------------------------------------------------------------- status
    def _maybe_publish(self, plc: PlcStatus) -> None:
        now = time.monotonic()
        if self.stepped or now - self._last_publish >= PUBLISH_S:
            self._last_publish = now
            self._publish(plc)

    def _throughput_per_min(self, objects_seen: int) -> float | None:
        now = time.monotonic()
        self._seen_window.append((now, objects_seen))
        while self._seen_window and now - self._seen_window[0][0] > 60.0:
            self._seen_window.popleft()
        t0, n0 = self._seen_window[0]
        return None if now - t0 < 1.0 else 60.0 * (objects_seen - n0) / (now - t0)

    def _timebase_view(self) -> TimeBaseView:
        tb = self.parts.timebase.status()
        mm = self.parts.params.mm_per_tick
        trig = self.cfg.camera.trigger_every_ticks if tb.mode == "trigger" else None
        return TimeBaseView.model_construct(
            mode=tb.mode, trigger_every_ticks=trig, frames_stamped=tb.frames_stamped,
            frames_unstamped=tb.frames_unstamped, mismatches=tb.mismatches,
            timing_outliers=tb.timing_outliers, frames_unchecked=tb.frames_unchecked,
            error_source=tb.error_source, error_ticks_p50=tb.error_ticks_p50,
            error_ticks_p99=tb.error_ticks_p99, error_ticks_max=tb.error_ticks_max,
            error_mm_p99=None if tb.error_ticks_p99 is None else round(tb.error_ticks_p99 * mm, 3),
            last_problem=tb.last_problem,
        )  # fmt: skip

    def _sensor_view(self) -> SensorView | None:
        link = self.parts.sensor
        if link is None:
            return None
        st = link.status()
        return SensorView.model_construct(
            receiving=not st["stalled"] and not st["fault"], stalled=bool(st["stalled"]),
            fault=bool(st["fault"]), packets_ok=int(st["packets_ok"]),
            packets_lost=int(st["packets_lost"]), packets_refused=dict(st["refused"]),
            last_refusal=str(st["last_refusal"]), rows_missing=int(st["rows_missing"]),
            rows_kept=int(st["rows"]),
        )  # fmt: skip

    def _belt_load_view(self) -> BeltLoadView:
        segments, merged = self.belt_load.totals()
        r = self.belt_load.reading
        return BeltLoadView.model_construct(
            segments=segments, segments_merged=merged,
            merged_share=None if r is None or not r.judged else round(r.merged_share, 4),
            covered_share=None if r is None else round(r.covered_share, 4),
            window_frames=self.belt_load.window_frames,
        )  # fmt: skip

    def _publish(self, plc: PlcStatus) -> None:
        parts, loop = self.parts, self.loop
        self.valve_usage.add(time.time(), plc.valve_cycles)
        stats = parts.controller_stats()
        composition = {
            n: int(c) for n, c in zip(parts.class_names, loop.class_counts.tolist(), strict=True)
        }
        lat = loop.latency_ms.quantiles_ms()
        snap = StatusSnapshot.model_construct(
            line=self.cfg.line.name,
            **self._live_fields(),
            line_params=parts.params.summary(),
            uptime_s=round(time.monotonic() - self._started_mono_s, 3),
            frames=loop.frames,
            frames_dropped=loop.frames_dropped,
            frames_untimed=loop.frames_untimed,
            live_tracks=loop.live_tracks,
            controller=stats,
            throughput_per_min=self._throughput_per_min(int(stats.get("objects_seen", 0))),
            deadline_misses=int(stats.get("deadline_misses", 0)) + int(plc.pulses_late),
            quality=self.score.latest if self.score is not None else Quality(),
            composition=composition,
            latency_ms=LatencyMs.model_construct(p50=lat["p50"], p99=lat["p99"], max=lat["max"]),
            camera=self.camera.view(),
            timebase=self._timebase_view(),
            plc=plc,
            virtual_plant=self.score is not None,
            warm_up_s=self.warm_up_s,
            sensor=self._sensor_view(),
            belt_load=self._belt_load_view(),
        )
        with self._status_lock:
            self._status = snap

    def _live_fields(self) -> dict[str, Any]:
        """Fields operators change (state, recipe, calibration): read at request
        time, so a change shows at once rather than at the next frame."""
        return {
            "recipe": self.parts.recipe.name,
            "calibration": self.parts.calibration_status(),
            "state": self.state.state.name,
            "valves_disabled": sorted(self.valves_off),
            "state_code": int(self.state.state),
            "causes": list(self.state.causes),
            "events": [
                Event.model_construct(**dataclasses.asdict(t)) for t in self.state.history()[-30:]
            ],
        }

    def snapshot(self) -> StatusSnapshot:
        """The last published snapshot, with the state, recipe and calibration
        read live."""
        with self._status_lock:
            snap = self._status
        assert snap is not None
        return snap.model_copy(update=self._live_fields())

    def status(self) -> dict[str, Any]:
        return self.snapshot().model_dump(mode="json")

    @property
    def frames(self) -> int:
        return self.loop.frames

    @property
    def frames_dropped(self) -> int:
        return self.loop.frames_dropped

    # ------------------------------------------------------------- commands
    def command(self, cmd: Command, who: str) -> PackMLState:
        """Send an operator command to the PLC and wait (bounded) for the line
        to follow. ``TransitionError`` when the state does not allow it, the
        PLC refused it, or the PLC did not get there in time."""
        bridge = self.parts.bridge
        try:
            plc_cmd = self.state.command(cmd)
            if not bridge.snapshot().connected:
                raise TransitionError(f"cannot {cmd.value}: PLC link lost")
        except TransitionError as exc:
            self.state.note(f"{cmd.value} by {who}: refused: {exc}")
            raise
        seen = bridge.command_log()
        last = seen[-1] if seen else None
        bridge.command(plc_cmd)
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            now_log = bridge.command_log()
            if now_log and now_log[-1] is not last:
                outcome = now_log[-1]
            else:
                time.sleep(0.005)
        if outcome is None:
            raise TransitionError(f"{cmd.value}: the PLC did not answer in time")
        if outcome.result.startswith(("refused", "dropped", "error")):
            self.state.note(f"{cmd.value} by {who}: PLC {outcome.result}")
            raise TransitionError(f"{cmd.value}: PLC {outcome.result}")
        self.state.expect(f"{cmd.value} by {who}")  # the cause of the transitions it makes
        arrived = _PLC_ARRIVES[cmd]
        while time.monotonic() < deadline:  # the PLC took it: wait until it gets there
            bridge.poll_now(0.5)
            if bridge.snapshot().state in arrived:
                break
        self.loop.observe(bridge.snapshot())
        self._publish(bridge.snapshot())
        return self.state.state

    # --------------------------------------------------------------- recipe
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

    def switch_recipe(
        self, text: str, who: str, via: str = "PUT /recipe", note: str = ""
    ) -> dict[str, Any]:
        """Validate a recipe (TOML text) against the model's classes and switch to
        it while running; raises ``InputFileError`` (one line) and keeps the
        current recipe if it is malformed."""
        recipe = parse_recipe(text, f"recipe sent by {who}", self.parts.class_names)
        self.parts.set_recipe(recipe)
        self._recipe_switch = (who, time.time())
        self.recipe_library.note_activation(recipe, text, who, via, note)  # /recipes/history
        log.warning("recipe %r v%d switched in by %s", recipe.name, recipe.version, who)
        return self.recipe_info()

    def preview_geometry(self) -> PreviewGeometry:
        """What the camera preview draws with: the parameters in use now."""
        p = self.parts.params
        camera = p.camera_model or p.geometry.camera
        return PreviewGeometry(camera, p.geometry.valves, p.mm_per_tick, self.parts.class_names)

    # --------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        """The JSON summary of DESIGN.md (``sortline run --report``)."""
        score = self.score.final() if self.score is not None else None
        self._publish(self.parts.bridge.snapshot())
        extra = {"config": self.cfg.source, "camera_source": self.cfg.camera.source}
        return report_from(self.snapshot(), score, extra)
