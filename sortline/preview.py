"""The camera preview: a frame with its fragments outlined by class and the
planned air-jet windows drawn, as JPEG, for people (never for the loop).

**Drawing** (``draw_preview``) is a pure function of one ``Cycle``, the
pulses planned so far and the line geometry: the image is scaled to at most
``width_px`` first, then every detection's box is outlined in its class's
colour (grey: unclassified) and every valve-bar pulse still to come is drawn
as the belt area its air will cover, seen at the frame's encoder count: a
pulse ``valves a..b on from tick T1 to T2`` covers belt x from valve a's left
edge to valve b's right edge, and the belt points that will be under the
valve line during [T1, T2], which at the frame's count T lie at
``y = y_valve - (T2 - T) * mm_per_tick .. y_valve - (T1 - T) * mm_per_tick``
(belt mm, downstream positive); the four corners go through the camera model
into the image. A window downstream of the view (the valve line is usually
outside it) shows as its valves lit on a strip along the image's downstream
edge.

**Cost to the frame loop** (``PreviewTap``): ``on_cycle`` stores a reference
to the cycle and, when it sent pulses, appends a reference to them to a
bounded deque: no copy, no drawing, no encoding. Drawing and encoding run in
a child process (``sortline.preview_proc``), throttled to at most ``max_fps``
images per server, whatever the number of viewers. This module is what that
child imports: drawing only, no line.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from calibration.geometry import ValveBar
from core.ticks import tick_diff_array
from core.types import Pulses

if TYPE_CHECKING:  # the preview's child process imports this module: keep it light
    from sortline.listeners import Cycle

__all__ = [
    "CLASS_COLOURS_BGR",
    "PreviewGeometry",
    "PreviewJob",
    "PreviewShot",
    "PreviewTap",
    "Window",
    "class_colour_bgr",
    "draw_preview",
    "draw_preview_arrays",
    "encode_jpeg",
    "hex_colour",
    "pulse_windows",
    "pulses_to_come",
    "shrink",
]

# the default taxonomy's colours (BGR); other classes take the fallback palette in order
CLASS_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "steel": (160, 160, 160),
    "stainless": (230, 216, 173),
    "aluminium": (255, 255, 255),
    "copper": (51, 115, 200),
    "brass": (0, 200, 230),
    "pcb": (60, 180, 60),
    "battery": (0, 0, 255),
    "plastic": (220, 80, 220),
    "rubber": (40, 40, 40),
    "residue": (80, 130, 150),
}
_FALLBACK_BGR = [(255, 128, 0), (128, 255, 0), (0, 128, 255), (255, 0, 128), (128, 0, 255)]
UNCLASSIFIED_BGR = (128, 128, 128)
WINDOW_BGR = (255, 255, 0)  # cyan: air
STRIP_PX = 6  # the valve-line strip along the downstream edge


def class_colour_bgr(name: str, index: int) -> tuple[int, int, int]:
    """The colour of class ``name`` (``index``: its place in the model's list)."""
    return CLASS_COLOURS_BGR.get(name, _FALLBACK_BGR[index % len(_FALLBACK_BGR)])


def hex_colour(bgr: tuple[int, int, int]) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


class _MmToPx(Protocol):
    def mm_to_px(self, x_mm: Any, y_mm: Any) -> tuple[np.ndarray, np.ndarray]: ...


@dataclasses.dataclass(frozen=True)
class PreviewGeometry:
    """What drawing needs of the line: the camera (belt mm -> raw image px),
    the valve bar, the encoder scale and the class list (model order)."""

    camera: _MmToPx
    valves: ValveBar
    mm_per_tick: float
    class_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Window:
    """One planned air-jet window at a frame's count: valves ``first..last``,
    belt ``x0_mm..x1_mm`` across and ``y0_mm..y1_mm`` along (y0 upstream)."""

    first_valve: int
    last_valve: int
    x0_mm: float
    x1_mm: float
    y0_mm: float
    y1_mm: float
    fraction: int


def pulse_windows(
    pulses: Iterable[Pulses], tick: int, valves: ValveBar, mm_per_tick: float
) -> list[Window]:
    """The valve-bar windows of ``pulses`` not yet over at encoder count
    ``tick``, in belt mm at that count (see the module doc)."""
    out: list[Window] = []
    for p in pulses:
        if not len(p):
            continue
        bar = p.actuator == 0
        on = tick_diff_array(p.on_tick, tick)
        off = tick_diff_array(p.off_tick, tick)
        keep = bar & (off > 0)
        for i in np.flatnonzero(keep).tolist():
            a, b = int(p.first_valve[i]), int(p.last_valve[i])
            out.append(
                Window(
                    first_valve=a,
                    last_valve=b,
                    x0_mm=valves.x_first_mm + a * valves.pitch_mm,
                    x1_mm=valves.x_first_mm + (b + 1) * valves.pitch_mm,
                    y0_mm=valves.y_valve_mm - float(off[i]) * mm_per_tick,
                    y1_mm=valves.y_valve_mm - float(on[i]) * mm_per_tick,
                    fraction=int(p.fraction[i]),
                )
            )
    return out


def shrink(image: np.ndarray, width_px: int) -> tuple[np.ndarray, float]:
    """``image`` scaled to at most ``width_px`` wide (a view of it when it is
    no wider), and the scale (preview px per camera px)."""
    h, w = image.shape[:2]
    scale = min(1.0, width_px / w)
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _bgr(small: np.ndarray) -> np.ndarray:
    """A writable BGR copy of a (scaled) grey or colour image."""
    if small.ndim == 2:
        return cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    return np.array(small, copy=True)


def _draw_windows(
    img: np.ndarray, windows: Sequence[Window], geo: PreviewGeometry, scale: float
) -> None:
    h, w = img.shape[:2]
    strip: set[int] = set()
    overlay: np.ndarray | None = None  # made only when a window lies in view
    for win in windows:
        xs = np.array([win.x0_mm, win.x1_mm, win.x1_mm, win.x0_mm])
        ys = np.array([win.y0_mm, win.y0_mm, win.y1_mm, win.y1_mm])
        col, row = geo.camera.mm_to_px(xs, ys)
        pts = np.stack([(col + 0.5) * scale, (row + 0.5) * scale], axis=1)
        if not np.all(np.isfinite(pts)):
            continue
        if pts[:, 1].min() >= h:  # still downstream of the view: on the strip
            strip.update(range(win.first_valve, win.last_valve + 1))
            continue
        poly = np.round(pts).astype(np.int32).reshape(-1, 1, 2)
        if overlay is None:
            overlay = img.copy()
        cv2.fillPoly(overlay, [poly], WINDOW_BGR)
        cv2.polylines(img, [poly], True, WINDOW_BGR, 1, cv2.LINE_AA)
    if overlay is not None:
        cv2.addWeighted(overlay, 0.25, img, 0.75, 0.0, dst=img)
    if strip:
        bar = geo.valves
        for v in sorted(strip):
            xs = bar.x_first_mm + np.array([v, v + 1], np.float64) * bar.pitch_mm
            col, _ = geo.camera.mm_to_px(xs, np.zeros(2))
            c0, c1 = (round((c + 0.5) * scale) for c in col.tolist())
            if c1 > 0 and c0 < w:
                cv2.rectangle(img, (c0, h - STRIP_PX), (max(c0, c1 - 1), h - 1), WINDOW_BGR, -1)


def _draw_detections(
    img: np.ndarray,
    bbox_px: np.ndarray,
    class_id: np.ndarray,
    confidence: np.ndarray,
    names: tuple[str, ...],
    scale: float,
) -> None:
    if not len(bbox_px):
        return
    boxes = np.round(np.asarray(bbox_px, np.float64) * scale).astype(np.int64)
    for (x0, y0, x1, y1), cid, conf in zip(
        boxes.tolist(), np.asarray(class_id).tolist(), np.asarray(confidence).tolist(), strict=True
    ):
        known = 0 <= cid < len(names)
        colour = class_colour_bgr(names[cid], cid) if known else UNCLASSIFIED_BGR
        cv2.rectangle(img, (x0, y0), (x1, y1), colour, 2)
        if known and x1 - x0 >= 30:
            label = f"{names[cid]} {conf:.2f}"
            cv2.putText(img, label, (x0 + 2, max(10, y0 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        colour, 1, cv2.LINE_AA)  # fmt: skip


def draw_preview_arrays(
    small: np.ndarray,
    scale: float,
    tick: int,
    bbox_px: np.ndarray,
    class_id: np.ndarray,
    confidence: np.ndarray,
    pulses: Iterable[Pulses],
    geo: PreviewGeometry,
) -> tuple[np.ndarray, list[Window]]:
    """``draw_preview`` on a frame already ``shrink``-ed (``scale``) and its
    detections' columns: what the preview's child process draws."""
    img = _bgr(small)
    windows = pulse_windows(pulses, tick, geo.valves, geo.mm_per_tick)
    _draw_windows(img, windows, geo, scale)
    _draw_detections(img, bbox_px, class_id, confidence, geo.class_names, scale)
    return img, windows


def draw_preview(
    cycle: Cycle, pulses: Iterable[Pulses], geo: PreviewGeometry, width_px: int = 640
) -> tuple[np.ndarray, list[Window]]:
    """The annotated BGR image (H', W', 3) uint8, at most ``width_px`` wide,
    and the windows drawn (belt mm at the frame's count)."""
    small, scale = shrink(cycle.frame.image, width_px)
    d = cycle.detections
    return draw_preview_arrays(
        small, scale, cycle.frame.tick, d.bbox_px, d.class_id, d.confidence, pulses, geo
    )


def encode_jpeg(img: np.ndarray, quality: int = 75) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


@dataclasses.dataclass(frozen=True)
class PreviewJob:
    """One preview to draw: the frame already scaled to the preview's width
    (``scale``: preview px per camera px; the pixels travel beside it), its
    encoder count, its detections' boxes (camera px), classes and
    confidences, and the pulses still to come."""

    shape: tuple[int, ...]
    dtype: str
    scale: float
    tick: int
    bbox_px: np.ndarray
    class_id: np.ndarray
    confidence: np.ndarray
    pulses: Pulses


@dataclasses.dataclass(frozen=True)
class PreviewShot:
    """What ``PreviewTap.take`` hands out: the job, the scaled frame, and
    the frame's id, time and number of detections."""

    job: PreviewJob
    image: np.ndarray
    frame_id: int
    t_unix_s: float
    detections: int


def pulses_to_come(batches: list[Pulses], tick: int) -> Pulses:
    """The valve-bar pulses of ``batches`` not over at encoder count ``tick``
    (wrap-safe), as one batch."""
    if not batches:
        return Pulses.empty()
    p = Pulses.concat(batches)
    return p[(p.actuator == 0) & (tick_diff_array(p.off_tick, tick) > 0)]


class PreviewTap:
    """The frame loop's listener: keeps references, nothing else (module doc)."""

    def __init__(self, keep_batches: int = 256) -> None:
        self.latest: Cycle | None = None
        self._pulses: deque[Pulses] = deque(maxlen=keep_batches)

    def on_cycle(self, cycle: Cycle) -> None:
        self.latest = cycle
        if len(cycle.pulses):
            self._pulses.append(cycle.pulses)

    def pulses(self) -> list[Pulses]:
        """The pulse batches kept (a copy of the deque's references)."""
        return list(self._pulses)

    def _drop_spent(self, tick: int) -> None:
        """Forget the oldest batches whose every pulse is over at ``tick``
        (wrap-safe), so a preview concatenates only what is still to come.
        The loop appends on the right meanwhile; only this thread pops."""
        while self._pulses:
            oldest = self._pulses[0]
            if len(oldest) and (tick_diff_array(oldest.off_tick, tick) > 0).any():
                return
            self._pulses.popleft()

    def take(self, width_px: int, after_frame_id: int | None = None) -> PreviewShot | None:
        """The newest frame scaled to at most ``width_px`` wide, with what the
        preview draws over it; None before the first frame or when the newest
        is still ``after_frame_id``. Called by the preview's encoder, from the
        API's process through ``sortline.remote`` (one call, about 0.4 MB back
        at 640 px), never by the frame loop."""
        cycle = self.latest
        if cycle is None or cycle.frame.frame_id == after_frame_id:
            return None
        frame, d = cycle.frame, cycle.detections
        self._drop_spent(int(frame.tick))
        small, scale = shrink(frame.image, width_px)
        small = np.ascontiguousarray(small)
        job = PreviewJob(
            small.shape, small.dtype.str, scale, int(frame.tick), d.bbox_px, d.class_id,
            d.confidence, pulses_to_come(self.pulses(), int(frame.tick)),
        )  # fmt: skip
        return PreviewShot(job, small, int(frame.frame_id), float(cycle.t_unix_s), len(d))

    def close(self) -> None:
        self.latest = None
        self._pulses.clear()


def legend(class_names: Sequence[str]) -> Mapping[str, str]:
    """Class -> CSS colour, the colours the preview outlines them in."""
    return {n: hex_colour(class_colour_bgr(n, i)) for i, n in enumerate(class_names)}
