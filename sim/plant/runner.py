"""``PlantRunner``: the virtual plant as a camera and a PLC, the way a line sees one.

It owns a ``VirtualPlant``, the virtual PLC (``PlcCore`` on a Modbus TCP
``VirtualPlcServer``) and a shared-memory frame ring (``core.frame_ring``)
the controller reads like any camera (``vision.sources_shm.ShmRingCamera``).
A daemon thread steps the plant; ``sortline sim plant`` runs it in its own
process, a controller may run it in a thread of its own.

Time base of the camera:
- ``"trigger"``: the PLC triggers the camera every ``trigger_every_ticks``
  (HR 3, written by the controller's bridge; 0 = off, the power-on default).
  The belt runs exactly to each ``PlcCore.next_trigger_tick()`` count, the
  frame is rendered there, and the PLC latches the same count. The camera
  counter goes up by one per trigger; while the trigger is off the belt runs
  and no frame is exposed.
- ``"free"``: a free-running camera at ``fps`` (``VirtualPlant.step``).

Pacing: by default sim time follows ``time.monotonic``: the belt runs at its
speed in wall time, and a plant that falls behind (its thread starved of
CPU) is a camera whose frames arrive late, each stamped with the instant of
its exposure, as a real camera's are; the PLC's encoder reads give the count
of the instant of the read all the while. Far behind, more than
``RESYNC_S``, the belt waits (the encoder reads stand until the plant passes
them) and the time skipped is counted. ``stepped``:
the plant moves only when the ring's reader requests a frame (software
trigger) and renders one frame per request, so a controller may wait for the
PLC's acknowledgement in between and a seed gives the same run every time.

The ring carries each frame's true exposure count and its time on this host's
``time.monotonic``: the wall-clock instant of the exposure when paced (the
instant the belt reached the count, however late the frame is rendered), the
moment of writing when stepped.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from calibration.geometry import LineGeometry
from core.frame_ring import FrameRingWriter
from core.ticks import tick_diff
from core.types import Pulses
from plc import regmap as rm
from plc.regmap import PackMLState
from sim.plant.induction import InductionSensor
from sim.plant.induction_udp import RowSender
from sim.plant.plant import VirtualPlant
from sim.plant.scenario import Scenario
from sim.vplc.core import PlcCore
from sim.vplc.server import VirtualPlcServer

__all__ = ["RESYNC_S", "PlantRunner", "Timebase"]

log = logging.getLogger("sim.plant.runner")

Timebase = Literal["trigger", "free"]
RESYNC_S = 0.5  # paced: further behind the wall clock than this, skip ahead
_PHYSICS_S = 0.001  # paced: the belt (and the PLC's encoder) moves this often
_REQUEST_POLL_S = 0.1


class _WallClockPlc:
    """The plant calls ``advance`` with its own (possibly stepped) clock; the
    PLC's watchdog must run on real time, because the heartbeat arrives over a
    real socket from a real thread. wall_of: the wall-clock instant of a plant
    time (paced), for the encoder reads between advances; None: stepped."""

    def __init__(self, core: PlcCore, wall_of: Callable[[float], float] | None) -> None:
        self.core = core
        self.wall_of = wall_of

    def advance(self, tick_u32: int, speed_mm_s: float, now_s: float) -> Pulses:
        wall_s = None if self.wall_of is None else self.wall_of(now_s)
        return self.core.advance(tick_u32, speed_mm_s, time.monotonic(), wall_s=wall_s)

    def valves_open(self) -> np.ndarray:
        """(n_valves,) bool: the plant settles a fragment only once no run is open over it."""
        return self.core.valves_open()

    def diverters_on(self) -> np.ndarray:
        return self.core.diverters_on()


class PlantRunner:
    """The virtual plant behind a frame ring and a Modbus TCP PLC.

    geometry, scenario, seed: the plant (``VirtualPlant``); n_valves,
    n_diverters, watchdog_ms, device_id: the PLC; plc_host, plc_port: where
    it listens (port 0: a free one, see ``plc_port`` after ``start``);
    ring_name: the frame ring (``core.frame_ring.ring_path``); timebase, fps,
    stepped: see the module doc.
    """

    def __init__(
        self,
        geometry: LineGeometry,
        scenario: Scenario,
        *,
        seed: int | None,
        n_valves: int,
        watchdog_ms: float,
        ring_name: str,
        timebase: Timebase,
        fps: float,
        plc_host: str = "127.0.0.1",
        plc_port: int = 0,
        device_id: int = rm.DEFAULT_DEVICE_ID,
        stepped: bool = False,
        n_diverters: int = 0,
        ring_slots: int = 8,
        sensor: InductionSensor | None = None,
        sensor_to: tuple[str, int] | None = None,
    ) -> None:
        if timebase not in ("trigger", "free"):
            raise ValueError(f'timebase {timebase!r}: expected "trigger" or "free"')
        if not 0 < fps <= 10000:
            raise ValueError(f"fps {fps} outside (0, 10000]")
        self.timebase: Timebase = timebase
        self.stepped = stepped
        self.period_s = 1.0 / fps
        self.ring_name = ring_name
        self._ring_slots = ring_slots
        self.plc = PlcCore(
            n_valves, n_diverters=n_diverters, watchdog_ms=watchdog_ms, clock=time.monotonic
        )
        self._offset_s = 0.0  # paced, once started: wall (monotonic) = plant.now_s + offset
        wall_of = None if stepped else self._wall_of
        self.plant = VirtualPlant(
            geometry, scenario, _WallClockPlc(self.plc, wall_of), seed=seed, feed_gate=self._feeding
        )
        self.plc.advance(self.plant.tick, self.plant.speed_mm_s, time.monotonic())
        self._server = VirtualPlcServer(self.plc, host=plc_host, port=plc_port, device_id=device_id)
        # the induction bar (sim.plant.induction) and its UDP stream to sensor_to
        self.sensor: InductionSensor | None = None
        self.sensor_sender: RowSender | None = None
        self.sensor_mute = False  # True: rows are sampled but not sent (a stalled sensor)
        if sensor is not None:
            self.add_sensor(sensor, sensor_to)
        self._cam = geometry.camera
        self._lock = threading.Lock()  # the plant: stepping thread vs score()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: FrameRingWriter | None = None
        self._frames = 0
        self._next_exposure_s = self.period_s  # free + paced: sim time of the next frame
        self.skipped_s = 0.0
        self.requests = 0
        self.error: str | None = None

    # ---- life ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the ring, start the PLC server and the stepping thread. Raises
        ``core.frame_ring.FrameRingError`` (ring in use) or ``OSError`` (port)."""
        if self._thread is not None:
            raise RuntimeError("PlantRunner already started")
        h, w = self._cam.height_px, self._cam.width_px
        self._writer = FrameRingWriter.create(self.ring_name, w, h, 3, self._ring_slots)
        try:
            self._server.start()
        except BaseException:
            self._writer.close()
            self._writer = None
            raise
        self._offset_s = time.monotonic() - self.plant.now_s
        if not self.stepped:  # paced: the encoder reads move while the plant renders
            self.plc.follow_wall_clock(self.plant.geometry.belt.mm_per_tick, max_ahead_s=RESYNC_S)
        self._thread = threading.Thread(target=self._run, name="plant-runner", daemon=True)
        self._thread.start()

    def add_sensor(self, sensor: InductionSensor, to: tuple[str, int] | None) -> None:
        """Put the bar on the belt (before ``start``); ``to``: (host, port) its
        rows are streamed to over UDP (None: sampled, not sent)."""
        if self.sensor is not None:
            raise RuntimeError("the plant has a sensor bar already")
        self.sensor = sensor
        self.plant.sensors.append(sensor)
        if to is not None:
            hz = sensor.bar.frequencies_hz
            self.sensor_sender = RowSender(*to, sensor.bar.channels, frequencies_hz=hz)

    def stop(self) -> None:
        """Stop stepping, close the PLC server and remove the ring; safe twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self._server.stop()
        if self.sensor_sender is not None:
            self.sensor_sender.close()
        if self._writer is not None:
            self._writer.close(unlink=True)
            self._writer = None

    def __enter__(self) -> PlantRunner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- public state -------------------------------------------------------------------
    @property
    def plc_port(self) -> int:
        return self._server.port

    @property
    def plc_host(self) -> str:
        return self._server.host

    @property
    def frames(self) -> int:
        """Frames written to the ring so far."""
        return self._frames

    def _feeding(self) -> bool:
        """The feeder's interlock: it feeds only while the PLC executes with a
        live controller heartbeat, as a plant interlocks its feeder with the
        sorter (material fed while the sorter cannot sort passes unsorted)."""
        return self.plc.state is PackMLState.EXECUTE and self.plc.heartbeat_ok()

    def score(self, targets: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``VirtualPlant.score(targets).to_dict()``, from any thread."""
        with self._lock:
            return self.plant.score(targets).to_dict()

    def health(self) -> dict[str, Any]:
        plc = self.plc
        with self._lock:
            tick, sim_s = self.plant.tick, self.plant.now_s
        nxt = plc.next_trigger_tick()
        return {
            "frames": self._frames,
            "tick": tick,
            "sim_s": round(sim_s, 6),
            "skipped_s": round(self.skipped_s, 6),
            "timebase": self.timebase,
            "stepped": self.stepped,
            "requests": self.requests,
            "trigger": {
                "on": nxt is not None,
                "every_ticks": plc.trigger_every_ticks,
                "next_tick": nxt,
                "seq": plc.trigger_seq,
            },
            "plc_state": plc.state.name,
            "ring": self.ring_name,
            "plc_port": self.plc_port,
            "running": self._thread is not None and self._thread.is_alive(),
            "error": self.error,
        }

    # ---- stepping thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.stepped:
                self._run_stepped()
            else:
                self._run_paced()
        except Exception as exc:  # reported by health() and the command
            log.exception("virtual plant stopped")
            self.error = f"{type(exc).__name__}: {exc}"

    def _wall_of(self, plant_s: float) -> float:
        """The wall-clock instant (``time.monotonic``) of plant time ``plant_s``
        (paced, from ``start`` on: the PLC's reads follow the wall clock only then)."""
        return plant_s + self._offset_s

    def _expose(self) -> None:
        """Expose now and publish. Paced, the frame's time is the wall-clock
        instant the belt reached its count, however late the plant renders it:
        the instant at which the PLC's encoder, read over Modbus, showed the
        same count. Stepped, the moment of writing."""
        assert self._writer is not None
        when = time.monotonic() if self.stepped else self._wall_of(self.plant.now_s)
        frame = self.plant.render()
        self._writer.write(frame.image, frame.frame_id, when, frame.tick)
        self._frames += 1

    def _trigger_target(self) -> int | None:
        """The unwrapped count of the next trigger, None while the trigger is off."""
        nxt = self.plc.next_trigger_tick()
        if nxt is None:
            return None
        p = self.plant
        return p.tick_unwrapped + tick_diff(nxt, p.tick)

    def _run_stepped(self) -> None:
        assert self._writer is not None
        writer = self._writer
        while not self._stop.is_set():
            want = writer.wait_request(_REQUEST_POLL_S)
            if want is None:
                continue
            self.requests += 1
            while self.plant.frame_id < want and not self._stop.is_set():
                stepped = self._step_once()
                self._send_rows()
                if not stepped:
                    writer.beat()
                    self._stop.wait(_PHYSICS_S)  # trigger off: the plant stands

    def _send_rows(self) -> None:
        """The bar's rows sampled since the last call, as UDP datagrams (never blocks)."""
        if self.sensor is None:
            return
        with self._lock:
            rows = self.sensor.drain()
        if self.sensor_sender is not None and len(rows) and not self.sensor_mute:
            self.sensor_sender.send(rows)

    def _step_once(self) -> bool:
        """Stepped: expose the next frame; False while the trigger is off."""
        with self._lock:
            if self.timebase == "free":
                self.plant.run_for(self.period_s)
                self._expose()
                return True
            target = self._trigger_target()
            if target is None:
                return False
            if target <= self.plant.tick_unwrapped:  # not expected: let the PLC catch up
                self.plant.run_to_tick(self.plant.tick_unwrapped + 1)
                return False
            self.plant.run_to_tick(target)
            self._expose()
            return True

    def _run_paced(self) -> None:
        assert self._writer is not None
        writer = self._writer
        while not self._stop.is_set():
            writer.beat()
            sim_target = self._sim_target()
            with self._lock:
                if self.timebase == "free":
                    exposed = self._paced_free(sim_target)
                else:
                    exposed = self._paced_trigger(sim_target)
            self._send_rows()
            if not exposed:
                self._stop.wait(_PHYSICS_S)

    def _sim_target(self) -> float:
        """Sim time (s) the wall clock asks for; resynchronises when far behind."""
        target = time.monotonic() - self._offset_s
        behind = target - self.plant.now_s
        if behind > RESYNC_S:
            self._offset_s += behind
            self.skipped_s += behind
            target -= behind
        return target

    def _paced_free(self, sim_target: float) -> bool:
        p = self.plant
        if sim_target >= self._next_exposure_s:
            p.run_for(self._next_exposure_s - p.now_s)
            self._next_exposure_s += self.period_s
            self._expose()
            return True
        if sim_target - p.now_s >= _PHYSICS_S / 2:
            p.run_for(sim_target - p.now_s)
        return False

    def _paced_trigger(self, sim_target: float) -> bool:
        p = self.plant
        ahead_s = max(sim_target - p.now_s, 0.0)
        reach = p.tick_unwrapped + math.floor(ahead_s * p.speed_mm_s / p.geometry.belt.mm_per_tick)
        target = self._trigger_target()
        if target is not None and p.tick_unwrapped < target <= reach:
            p.run_to_tick(target)
            self._expose()
            return True
        if reach > p.tick_unwrapped:
            p.run_to_tick(reach)
        return False
