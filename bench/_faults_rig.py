"""A test rig for the encoder, belt and frame scenarios of ``bench/faults.py``:
``sortline sim plc --inject-port`` (the PLC alone, its encoder and drive
under the bench's control) and a camera played by this process into a
shared-memory frame ring (``BenchCamera``: a recorded belt video looped at
the line's frame rate, with black, wrong-size or out-of-order frames on
request), and ``sortline run`` on that ring with a free-running time base.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench._faults_camera import _video
from bench._faults_procs import Line, PlcProbe, Proc, free_port, http_json, until
from core.frame_ring import FrameRingWriter

FPS = 100.0
MODES = ("ok", "black", "reorder", "stall")


def load_frames(video: Path, limit: int = 300) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    try:
        while len(frames) < limit:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(np.ascontiguousarray(img))
    finally:
        cap.release()
    if not frames:
        raise RuntimeError(f"{video}: no frames")
    return frames


class BenchCamera:
    """Writes ``frames`` looped into ring ``name`` at ``fps`` in a thread.

    ``mode``: "ok"; "black" (all-zero frames); "reorder" (each pair of frames
    written newest first: counters k+1, k); "stall" (nothing written, the
    writer alive). ``replace(width, height)`` closes the ring and makes a new
    one of that size (a camera reconfigured to a wrong size), ``replace()``
    one of the frames' size again. ``written`` counts frames by mode.
    """

    def __init__(self, name: str, frames: list[np.ndarray], fps: float = FPS) -> None:
        self.name = name
        self.frames = frames
        self.period_s = 1.0 / fps
        self.mode = "ok"
        self.written = dict.fromkeys(MODES, 0)
        self._size: tuple[int, int] | None = None
        self._lock = threading.Lock()
        h, w = frames[0].shape[:2]
        self._writer = FrameRingWriter.create(name, w, h, 3)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-camera", daemon=True)

    def start(self) -> BenchCamera:
        self._thread.start()
        return self

    def replace(self, width: int | None = None, height: int | None = None) -> None:
        with self._lock:
            self._writer.close()
            h, w = self.frames[0].shape[:2]
            size = None if width is None or height is None else (width, height)
            ring_w, ring_h = size or (w, h)
            self._writer = FrameRingWriter.create(self.name, ring_w, ring_h, 3)
            self._size = size

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._writer.close()

    def _image(self, k: int) -> np.ndarray:
        img = self.frames[k % len(self.frames)]
        if self._size is not None:
            return np.full((self._size[1], self._size[0], 3), 90, np.uint8) + (k % 7)
        return np.zeros_like(img) if self.mode == "black" else img

    def _run(self) -> None:
        k = 0
        t_next = time.monotonic()
        while not self._stop.is_set():
            t_next += self.period_s
            self._stop.wait(max(t_next - time.monotonic(), 0.0))
            mode = self.mode
            with self._lock:
                if mode == "stall":
                    self._writer.beat()
                elif mode == "reorder" and k % 2 == 0:
                    t = time.monotonic()  # k and k+1 exposed now, delivered newest first
                    self._writer.write(self._image(k + 1), k + 1, t + self.period_s)
                    self._writer.write(self._image(k), k, t)
                    t_next += self.period_s
                    k += 2
                else:
                    self._writer.write(self._image(k), k, time.monotonic())
                    k += 1
            self.written[mode] += 1 if mode != "reorder" else 2


@dataclass
class Rig:
    plc: Proc
    inject: str
    camera: BenchCamera
    line: Line
    probe: PlcProbe
    plc_port: int

    def inject_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        code, reply = http_json(f"{self.inject}{path}", body)
        if code != 200 or not isinstance(reply, dict):
            raise RuntimeError(f"POST {path} {body}: {code} {reply}")
        return reply

    def stop(self) -> None:
        self.probe.close()
        self.line.proc.stop()
        self.camera.stop()
        self.plc.stop()


def start_rig(
    tmp: Path,
    line_extra: str = "",
    module: str = "sortline.cli",
    records: Path | None = None,
    line_env: dict[str, str] | None = None,
) -> Rig:
    """PLC (with injection), camera and line, in Execute with a pulse acknowledged;
    production records in ``records`` when given (else off); ``line_env``: added
    to the line process's environment."""
    rec = (
        "[records]\nenabled = false\n"
        if records is None
        else f'[records]\nenabled = true\ndir = "{records}"\n'
    )
    frames = load_frames(_video(tmp))
    port = free_port()
    plc = Proc(["sim", "plc", "--port", str(port), "--inject-port", "0"], tmp / "plc.log")
    inject = plc.lines[0].split(" inject ")[1].split(";")[0].strip()
    ring = f"sortline-faults-rig-{port}"
    camera = BenchCamera(ring, frames).start()
    try:
        line = Line(
            f'[camera]\nsource = "shm:{ring}"\ntimebase = "free"\n[plc]\nport = {port}\n'
            f"reconnect_max_ms = 500\n[sim]\nenabled = false\n" + rec + line_extra,
            tmp,
            module,
            line_env,
        )
    except Exception:
        camera.stop()
        plc.stop()
        raise
    rig = Rig(plc, inject, camera, line, PlcProbe(port), port)
    if until(lambda: line.state() == "EXECUTE" and line.acked() > 0, 30, 0.1) is None:
        causes = line.causes()
        rig.stop()
        raise RuntimeError(f"the rig's line did not reach Execute: {causes}")
    return rig
