"""Ground truth: what the plant rendered in a frame, and what became of every
fragment it ever fed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

__all__ = ["FragmentRecord", "FrameTruth", "Placed", "RunLog", "RunRecord", "centre_crossing"]


@dataclasses.dataclass(frozen=True, slots=True)
class Placed:
    """Where a fragment's own pixels went: ``mask`` (bool) covers image
    columns c0..c1 and rows r0..r1 (end exclusive)."""

    fragment_id: int
    c0: int
    r0: int
    c1: int
    r1: int
    mask: np.ndarray


@dataclasses.dataclass(frozen=True, slots=True)
class FrameTruth:
    """Fragments visible in one rendered frame (drawing order: later on top).

    frame_id, tick:  as in the ``Frame`` (tick uint32 at exposure).
    travel_mm:       belt travel at exposure (u = y - travel_mm).
    fragment_id:     (N,) int64.
    class_id:        (N,) int16 index into ``core.classes.DEFAULT_CLASSES``.
    class_name:      N class names.
    bbox_px:         (N, 4) float32 x0, y0, x1, y1 clipped to the image.
    truncated:       (N,) bool, the outline is cut by the image border.
    centroid_mm:     (N, 2) float64 belt x, y at exposure (physical position,
                     not rounded to the pixel grid the sprite was drawn on).
    centroid_px:     (N, 2) float64 col, row.
    size_mm:         (N,) float32 longest extent.
    visible_frac:    (N,) float32 share of its own pixels not covered by
                     fragments drawn on top of it (inside the image).
    polygons_px:     N outlines, each (M, 2) float32 col, row (unclipped).
    image_shape:     (H, W) of the frame.
    placed:          per fragment, where its own pixels went (drawing order).
    ``label_image()`` paints the per-pixel fragment ids on demand.
    """

    frame_id: int
    tick: int
    travel_mm: float
    fragment_id: np.ndarray
    class_id: np.ndarray
    class_name: tuple[str, ...]
    bbox_px: np.ndarray
    truncated: np.ndarray
    centroid_mm: np.ndarray
    centroid_px: np.ndarray
    size_mm: np.ndarray
    visible_frac: np.ndarray
    polygons_px: tuple[np.ndarray, ...]
    image_shape: tuple[int, int]
    placed: tuple[Placed, ...]

    def __len__(self) -> int:
        return int(self.fragment_id.shape[0])

    def label_image(self) -> np.ndarray:
        """(H, W) int64 id of the topmost fragment at each pixel (its own
        pixels: no shadow, no blur), -1 for belt."""
        lab = np.full(self.image_shape, -1, np.int64)
        for p in self.placed:
            lab[p.r0 : p.r1, p.c0 : p.c1][p.mask] = p.fragment_id
        return lab


@dataclasses.dataclass(slots=True)
class RunRecord:
    """One completed actuator run, with air at the belt in unwrapped ticks."""

    run_id: int
    actuator: int
    first_valve: int
    last_valve: int
    air_on_tick: float
    air_off_tick: float
    air_ms: float
    track_id: int

    @property
    def valve_ms(self) -> float:
        """Valve-open time summed over the valves of the run, ms (air use)."""
        return self.air_ms * (self.last_valve - self.first_valve + 1)


class RunLog(Sequence[RunRecord]):
    """Completed runs indexed by run id, the oldest droppable.

    Behaves as the list of every run since the start (``len`` counts them
    all, ``log[run_id]`` and ``log[a:]`` index by run id), but a plant that
    runs for hours keeps only the runs at or after ``base``: ``drop_before``
    forgets older ones once no fragment in memory refers to them. Asking for
    a forgotten run raises ``IndexError`` naming it; iterating yields the
    kept runs only.
    """

    def __init__(self) -> None:
        self._base = 0
        self._kept: list[RunRecord] = []

    @property
    def base(self) -> int:
        """Id of the oldest run still kept."""
        return self._base

    def __len__(self) -> int:
        return self._base + len(self._kept)

    @overload
    def __getitem__(self, i: int) -> RunRecord: ...
    @overload
    def __getitem__(self, i: slice) -> list[RunRecord]: ...
    def __getitem__(self, i: int | slice) -> RunRecord | list[RunRecord]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if start < self._base and start < stop:
                raise IndexError(f"runs {start}..{self._base - 1} were forgotten")
            return self._kept[start - self._base : stop - self._base : step]
        k = i + len(self) if i < 0 else i
        if not self._base <= k < len(self):
            raise IndexError(f"run {i} is not kept (kept: {self._base}..{len(self) - 1})")
        return self._kept[k - self._base]

    def __iter__(self) -> Iterator[RunRecord]:
        return iter(self._kept)

    def append(self, run: RunRecord) -> None:
        if run.run_id != len(self):
            raise ValueError(f"run id {run.run_id} out of order (next is {len(self)})")
        self._kept.append(run)

    def drop_before(self, run_id: int) -> int:
        """Forget runs with id < ``run_id``; returns how many were dropped."""
        n = min(max(run_id, self._base), len(self)) - self._base
        if n > 0:
            del self._kept[:n]
            self._base += n
        return n


@dataclasses.dataclass(slots=True)
class FragmentRecord:
    """Ground truth of one fragment, from feed to bin.

    ``run_hits``: run id -> share of the footprint that run's air covered;
    ``run_match``: run id -> overlap / union of the footprint and the run's
    air rectangle (x span x belt travel while on), which names the fragment a
    run was meant for (the best match). Ticks are unwrapped encoder counts;
    ``bin`` is None while in flight (not yet fully past the valve line), else
    ``pass``, ``eject`` (valve bar) or ``divertK`` (diverter flap K).
    ``motion``: ``lying``, ``rolling``, ``sliding`` or ``bouncing``
    (``feed.MOTION_KINDS``); ``cross_tick`` and ``x_cross_mm``: when the
    fragment's reference point (``FrameTruth.centroid_mm``) crossed the valve
    line and its x there; ``cross_lead_tick`` / ``cross_trail_tick``: its
    leading edge reached and its trailing edge left the line.
    """

    fragment_id: int
    class_name: str
    class_id: int
    kind: str
    size_mm: float
    length_mm: float
    width_mm: float
    spawn_t_s: float
    spawn_tick: int
    x_feed_mm: float
    rolls: bool
    bounces: bool
    motion: str = "lying"
    frames_seen: int = 0
    cross_tick: float | None = None
    cross_lead_tick: float | None = None
    cross_trail_tick: float | None = None
    x_cross_mm: float | None = None
    bin: str | None = None
    decided_t_s: float | None = None
    width_share: float = 0.0
    length_share: float = 0.0
    hit_share: float = 0.0
    hit_u_centre: float | None = None
    tumbled: bool = False  # covered by air but fell back (heavy, tumbling)
    run_hits: dict[int, float] = dataclasses.field(default_factory=dict)
    run_match: dict[int, float] = dataclasses.field(default_factory=dict)

    @property
    def crossed(self) -> bool:
        return self.bin is not None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["run_hits"] = {str(k): round(v, 4) for k, v in self.run_hits.items()}
        d["run_match"] = {str(k): round(v, 4) for k, v in self.run_match.items()}
        return d


def centre_crossing(
    path_tick: np.ndarray, path_y_mm: np.ndarray, path_x_mm: np.ndarray, y_line_mm: float
) -> tuple[float, float]:
    """(tick, x mm) at which a path (unwrapped ticks, belt y and x, y rising)
    crosses ``y_line_mm``, linearly interpolated between its samples."""
    tick = float(np.interp(y_line_mm, path_y_mm, path_tick))
    return tick, float(np.interp(tick, path_tick, path_x_mm))
