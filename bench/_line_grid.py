"""The cells of ``sortline bench line``'s report card and what is measured in each.

A cell is a preset (or scenario file) at a belt speed, a feed and a valve
pitch. Speed and feed override the preset's ``[motion] speed_mm_s`` and
``[feed] rate_obj_s`` in a scenario file written for the cell (everything
else of the preset stays); the 6.25 mm pitch is ``examples/fine-bar.toml``
(160 valves), 12.5 mm the default bar (80 valves).

Per frame after the first 20 (compiling and loading), a ``Probe`` keeps the
frame's latency (arrival to pulses handed to the bridge; in a stepped run
the frame arrives at its exposure) and the thread CPU time of the vision
stage and of the decision core. From those:
frames that a camera at the line's frame rate would have lost (a one-frame
buffer in front of a loop that takes each frame's measured time; the rate is
the PLC's trigger distance, 25 mm, at the cell's belt speed: 60, 100 and 140
frames/s at 1.5, 2.5 and 3.5 m/s), and CPU
per stage. The PLC's acknowledgement latency (write request to settling
acknowledgement) comes from the bridge's histogram; exposure to acknowledged
pulse is bounded above by the frame's p99 plus the acknowledgement's p99.
Rendering runs in the plant, never inside the timed stages.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.tomlw import dumps

__all__ = [
    "FINE_BAR",
    "Cell",
    "Probe",
    "cell_scenario",
    "dropped_at_rate",
    "full_cells",
    "histogram_quantile",
    "quick_cells",
]

FINE_BAR = str(Path(__file__).resolve().parents[1] / "examples" / "fine-bar.toml")
SPEEDS_M_S = (1.5, 2.5, 3.5)
SHRED_FEEDS = (250.0, 500.0, 1000.0, 2000.0)
OWN_FEED_PRESETS = ("default", "crowded", "dirty")
PITCHES_MM = (12.5, 6.25)


@dataclasses.dataclass(frozen=True)
class Cell:
    """preset: a preset name or scenario file; feed_obj_s None: the preset's own."""

    preset: str
    speed_m_s: float
    feed_obj_s: float | None
    valve_pitch_mm: float

    @property
    def line_config(self) -> str | None:
        return FINE_BAR if self.valve_pitch_mm == 6.25 else None

    def label(self) -> str:
        feed = "own" if self.feed_obj_s is None else f"{self.feed_obj_s:g}/s"
        name = Path(self.preset).stem
        return f"{name} {self.speed_m_s:g} m/s feed {feed} pitch {self.valve_pitch_mm:g}"


def quick_cells() -> list[Cell]:
    """``default`` at its own feed and ``shred`` at 500/s, both at 2.5 m/s."""
    return [Cell("default", 2.5, None, 12.5), Cell("shred", 2.5, 500.0, 12.5)]


def full_cells(
    presets: Iterable[str] | None = None, shred_feeds: Iterable[float] | None = None
) -> list[Cell]:
    """Every speed and pitch; ``default``, ``crowded``, ``dirty`` at their own
    feed and ``shred`` from 250 to 2,000 fragments/s (``presets``: only these;
    ``shred_feeds``: these shred feeds, any value, in place of the four)."""
    keep = None if presets is None else set(presets)
    feeds = SHRED_FEEDS if shred_feeds is None else tuple(float(f) for f in shred_feeds)
    out = []
    for pitch in PITCHES_MM:
        for speed in SPEEDS_M_S:
            for p in OWN_FEED_PRESETS:
                out.append(Cell(p, speed, None, pitch))
            out.extend(Cell("shred", speed, f, pitch) for f in feeds)
    return [c for c in out if keep is None or c.preset in keep]


def cell_scenario(cell: Cell, workdir: Path) -> str:
    """A scenario file for ``cell``: its preset with speed and feed set."""
    from sim.plant.scenario import load_scenario

    data = load_scenario(cell.preset).model_dump(mode="json")
    data["motion"]["speed_mm_s"] = cell.speed_m_s * 1000.0
    if cell.feed_obj_s is not None:
        data["feed"]["rate_obj_s"] = cell.feed_obj_s
    tag = f"{Path(cell.preset).stem}-{cell.speed_m_s:g}-{cell.feed_obj_s or 'own'}"
    path = workdir / f"cell-{tag}.toml"
    path.write_text(dumps(data, f"sortline bench line: {cell.label()}"))
    load_scenario(path)  # what was written reads back (a bad override fails here, named)
    return str(path)


def dropped_at_rate(service_ms: np.ndarray, period_ms: float) -> int:
    """Frames a camera at one frame per ``period_ms`` would have lost in front
    of a loop that takes ``service_ms[i]`` for frame i, with one frame of
    buffer: a frame is lost when the one before it is still waiting."""
    busy_until = 0.0
    waiting_until = -math.inf  # when the buffered frame starts (it leaves the buffer)
    lost = 0
    for i, s in enumerate(service_ms.tolist()):
        t = i * period_ms
        if waiting_until > t:  # the buffer is still taken
            lost += 1
            continue
        start = max(t, busy_until)
        waiting_until = start if start > t else -math.inf
        busy_until = start + s
    return lost


def histogram_quantile(
    q: float, upper_s: tuple[float, ...], cumulative: tuple[int, ...]
) -> float | None:
    """Prometheus's ``histogram_quantile`` on one snapshot: linear within the
    bucket; the largest finite bound when the quantile falls in +Inf."""
    total = cumulative[-1]
    if total == 0:
        return None
    rank = q * total
    lo_bound, lo_count = 0.0, 0
    for bound, count in zip(upper_s, cumulative, strict=False):
        if count >= rank:
            span = count - lo_count
            return lo_bound + (bound - lo_bound) * ((rank - lo_count) / span if span else 1.0)
        lo_bound, lo_count = bound, count
    return upper_s[-1]


class _Timed:
    """Delegates to ``inner``; ``method`` timed in thread CPU seconds into ``out``."""

    def __init__(self, inner: Any, method: str, out: list[float]) -> None:
        self._inner, self._method, self._out = inner, method, out

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return attr(*args, **kwargs)
            finally:
                self._out.append((time.thread_time() - t0) * 1e3)

        return timed


WARMUP_FRAMES = 20  # the first frames pay for compiling and loading: left out


class Probe:
    """Attached to a line before it starts: per-frame latency and stage CPU
    (the first ``WARMUP_FRAMES`` left out)."""

    def __init__(self) -> None:
        self.latency_ms: list[float] = []
        self.vision_ms: list[float] = []
        self.control_ms: list[float] = []

    def attach(self, line: Any) -> None:
        loop = line.loop
        loop.vision = _Timed(loop.vision, "process", self.vision_ms)
        loop.controller = _Timed(loop.controller, "update", self.control_ms)
        loop.attach(self)

    def on_cycle(self, cycle: Any) -> None:
        self.latency_ms.append(float(cycle.latency_ms))

    def close(self) -> None:
        pass

    def figures(self, line: Any, fps: float) -> dict[str, Any]:
        def pct(xs: list[float]) -> dict[str, float | None]:
            xs = xs[WARMUP_FRAMES:]
            if not xs:
                return {"p50": None, "p99": None}
            a = np.asarray(xs, np.float64)
            return {
                "p50": round(float(np.percentile(a, 50)), 3),
                "p99": round(float(np.percentile(a, 99)), 3),
            }

        snap = line.parts.bridge.ack_latency.snapshot()
        ack = {
            k: None
            if (v := histogram_quantile(q, snap.upper_s, snap.cumulative)) is None
            else round(v * 1e3, 3)
            for k, q in (("p50", 0.5), ("p99", 0.99))
        }
        lat = pct(self.latency_ms)
        bound = (
            None if lat["p99"] is None or ack["p99"] is None else round(lat["p99"] + ack["p99"], 3)
        )
        return {
            "frame_ms": lat,
            "ack_ms": ack,
            "exposure_to_ack_p99_ms_at_most": bound,
            "frames_lost_at_camera_rate": dropped_at_rate(
                np.asarray(self.latency_ms[WARMUP_FRAMES:]), 1e3 / fps
            ),
            "cpu_ms": {"vision": pct(self.vision_ms), "control": pct(self.control_ms)},
        }
