"""Ground truth in place of the line's vision, for ``sortline bench line
--decompose`` (issue 15: where purity goes, stage by stage).

The embedded plant's ``render`` is tapped so each frame's ``FrameTruth`` is
kept by frame id (the camera ring carries the plant's frame id as the
camera counter, so the frame loop's frame has the same id). ``TruthVision``
then replaces the frame loop's vision stage, and nothing else:

- ``"classes"``: the line's own segmentation and measurement, each segment's
  class the truth's class of the fragment owning most of its box's pixels,
  vision's merge flag kept (segmentation with its merge cue, and actuation,
  are the line's; classification is perfect);
- ``"segments"``: one detection per visible fragment straight from the truth
  (``bench.air.truth_detections``: outline extents in belt mm, true class);
  only tracking, prediction and actuation are the line's;
- ``"merged"`` (``MergeModel``): true segments, but each pair of touching
  fragments is one segment with a set probability (a segmentation of known
  merge rate): what a given merge rate costs the line, and what rate a
  segmenter must reach for a target.

The encoder count and frame id stay the frame's (the line's time base).
A bench instrument: the line never runs with it.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from bench.air import P_TRUE, truth_detections
from core.frame import Frame
from core.types import Detections

Mode = Literal["classes", "segments", "merged"]
_KEEP = 32  # frames of truth kept (the ring holds at most a few in flight)


class TruthTap:
    """Keeps the truth of the plant's last frames by frame id."""

    def __init__(self, plant: Any) -> None:
        self._truths: OrderedDict[int, Any] = OrderedDict()
        render = plant.render

        def tapped() -> Frame:
            frame = render()
            self._truths[int(frame.frame_id)] = plant.visible_truth()
            while len(self._truths) > _KEEP:
                self._truths.popitem(last=False)
            return frame

        plant.render = tapped

    def truth(self, frame_id: int) -> Any:
        try:
            return self._truths[int(frame_id)]
        except KeyError:
            raise RuntimeError(f"no plant truth for frame {frame_id}") from None


def _one_hot(cls: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(cls)
    prob = np.full((n, n_classes), (1.0 - P_TRUE) / (n_classes - 1), np.float32)
    prob[np.arange(n), cls] = P_TRUE
    return prob, np.full(n, P_TRUE, np.float32)


class TruthVision:
    """The frame loop's vision stage with ground truth in place of a stage."""

    def __init__(
        self,
        inner: Any,
        tap: TruthTap,
        geometry: Any,
        n_classes: int,
        mode: Mode,
        merge: MergeModel | None = None,
    ):
        self.inner = inner
        self.tap = tap
        self.geometry = geometry
        self.n_classes = n_classes
        self.mode = mode
        if (mode == "merged") != (merge is not None):
            raise ValueError("a merge model goes with mode 'merged' and only with it")
        self.merge = merge
        # merged mode: kept fragments touching another kept one, and those merged
        self.tally = {"touching": 0, "touching_merged": 0}

    def process(self, frame: Frame) -> Detections:
        truth = self.tap.truth(frame.frame_id)
        if self.merge is not None:
            return merged_detections(truth, self.geometry, self.n_classes, self.merge, self.tally)
        if self.mode == "segments":
            dets, _ = truth_detections(truth, self.geometry, self.n_classes)
            return Detections(
                frame_id=int(frame.frame_id), tick=int(frame.tick), bbox_px=dets.bbox_px,
                centroid_mm=dets.centroid_mm, extent_mm=dets.extent_mm, area_mm2=dets.area_mm2,
                class_id=dets.class_id, confidence=dets.confidence, class_prob=dets.class_prob,
            )  # fmt: skip
        dets = self.inner.process(frame)
        cls = owner_classes(dets.bbox_px, truth)
        known = cls >= 0
        prob, conf = _one_hot(np.maximum(cls, 0), self.n_classes)
        prob[~known] = 1.0 / self.n_classes  # a segment of belt only: no class
        conf[~known] = 0.0
        return Detections(
            frame_id=dets.frame_id, tick=dets.tick, bbox_px=dets.bbox_px,
            centroid_mm=dets.centroid_mm, extent_mm=dets.extent_mm, area_mm2=dets.area_mm2,
            class_id=np.where(known, cls, -1).astype(np.int16), confidence=conf,
            class_prob=prob, merged=dets.merged, axes_mm=dets.axes_mm,
        )  # fmt: skip


def owner_classes(bbox_px: np.ndarray, truth: Any) -> np.ndarray:
    """(N,) int64 the true class of the fragment owning most pixels of each box
    (the topmost fragment at each pixel), -1 where the box holds only belt."""
    lab = truth.label_image()
    cls_of = dict(zip(truth.fragment_id.tolist(), truth.class_id.tolist(), strict=True))
    h, w = lab.shape
    out = np.full(len(bbox_px), -1, np.int64)
    for k, (x0, y0, x1, y1) in enumerate(np.asarray(bbox_px, np.float64)):
        c0, r0 = max(int(x0), 0), max(int(y0), 0)
        c1, r1 = min(int(np.ceil(x1)) + 1, w), min(int(np.ceil(y1)) + 1, h)
        ids = lab[r0:r1, c0:c1].ravel()
        ids = ids[ids >= 0]
        if len(ids):
            vals, counts = np.unique(ids, return_counts=True)
            out[k] = cls_of.get(int(vals[np.argmax(counts)]), -1)
    return out


def _downsampled_truth(truth: Any, shape: tuple[int, int], scale: int) -> np.ndarray:
    """The truth's label image sampled at the centres of ``scale`` x ``scale`` blocks,
    cut to ``shape`` (the segmentation's low-resolution grid)."""
    lab = truth.label_image()
    off = scale // 2
    return lab[off::scale, off::scale][: shape[0], : shape[1]]


def segment_truth(
    labels: np.ndarray, label_id: np.ndarray, scale: int, truth: Any
) -> dict[str, Any]:
    """Segments against the truth at the segmentation's resolution.

    Returns per segment (rows as ``label_id``): ``owner`` (fragment id with most
    pixels in it, -1 none), ``n_held`` (fragments with at least half of their
    visible pixels in it); per visible fragment (rows as ``truth.fragment_id``):
    ``touching`` (adjacent, diagonals included, to another fragment's pixels),
    ``merged`` (its main segment holds at least half of another fragment too),
    ``mixed`` (... of a fragment of another class), ``split`` (a second segment
    holds at least a quarter of it) and ``area`` (low-res px).
    """
    lab = _downsampled_truth(truth, labels.shape, scale)
    fids = np.asarray(truth.fragment_id, np.int64)
    n_f = len(fids)
    f_index = {int(f): i for i, f in enumerate(fids.tolist())}
    fidx = np.full(lab.shape, -1, np.int64)
    for f, i in f_index.items():
        fidx[lab == f] = i
    touching = np.zeros(n_f, bool)
    for a, b in _neighbours(fidx):
        m = (a >= 0) & (b >= 0) & (a != b)
        touching[a[m]] = True
        touching[b[m]] = True
    seg_of = {int(s): k for k, s in enumerate(np.asarray(label_id).tolist())}
    n_s = len(seg_of)
    sidx = np.full(labels.shape, -1, np.int64)
    if n_s:
        lut = np.full(int(labels.max()) + 1, -1, np.int64)
        for s, k in seg_of.items():
            if s < lut.size:
                lut[s] = k
        sidx = lut[labels]
    area = np.bincount(fidx[fidx >= 0], minlength=n_f)
    both = (fidx >= 0) & (sidx >= 0)
    table = np.zeros((max(n_f, 1), max(n_s, 1)), np.int64)
    np.add.at(table, (fidx[both], sidx[both]), 1)
    table = table[:n_f, :n_s]
    held = table >= 0.5 * np.maximum(area, 1)[:, None]  # (F, S)
    n_held = held.sum(axis=0) if n_f else np.zeros(n_s, np.int64)
    owner = np.full(n_s, -1, np.int64)
    if n_f and n_s:
        top = table.argmax(axis=0)
        has = table.max(axis=0) > 0
        owner[has] = fids[top[has]]
    merged = np.zeros(n_f, bool)
    mixed = np.zeros(n_f, bool)
    split = np.zeros(n_f, bool)
    if n_f and n_s > 1:
        second = np.sort(table, axis=1)[:, -2]
        split = second >= 0.25 * np.maximum(area, 1)
    cls = np.asarray(truth.class_id, np.int64)
    if n_f and n_s:
        main = table.argmax(axis=1)
        for i in range(n_f):
            if table[i, main[i]] == 0:
                continue
            others = np.flatnonzero(held[:, main[i]])
            others = others[others != i]
            merged[i] = others.size > 0
            mixed[i] = bool(np.any(cls[others] != cls[i]))
    return {
        "owner": owner, "n_held": n_held, "touching": touching, "merged": merged,
        "mixed": mixed, "split": split, "area": area,
    }  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class MergeModel:
    """A segmentation of known merge rate, for ``--visions truth-merged:P``.

    Each pair of fragments whose visible pixels touch (8-neighbours in the
    full-resolution truth, one lying on the other included) is one segment
    with probability ``rate``: decided once per pair (``per_frame`` False: a
    pair merged in one frame is merged whenever it touches, as a split cue
    that fails on a pair's look fails in every frame), or afresh in every
    frame. ``flag``: the merged segment carries the merge flag (a perfect
    merge cue) or not (no cue). Merges chain: three pieces in a row with both
    contacts merged are one segment.
    """

    rate: float
    per_frame: bool = False
    flag: bool = True
    salt: int = 0x5EED

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"merge rate {self.rate} is not within [0, 1]")

    @classmethod
    def parse(cls, spec: str) -> MergeModel:
        """``truth-merged:RATE[:frame][:noflag]`` -> MergeModel."""
        head, *parts = spec.split(":")
        if head != "truth-merged" or not parts:
            raise ValueError(f"{spec!r}: want truth-merged:RATE[:frame][:noflag]")
        try:
            rate = float(parts[0])
        except ValueError:
            raise ValueError(f"{spec!r}: merge rate {parts[0]!r} is not a number") from None
        extra = set(parts[1:])
        if extra - {"frame", "noflag"}:
            raise ValueError(f"{spec!r}: unknown option(s) {sorted(extra - {'frame', 'noflag'})}")
        return cls(rate=rate, per_frame="frame" in extra, flag="noflag" not in extra)

    def draws(self, a: np.ndarray, b: np.ndarray, frame_id: int) -> np.ndarray:
        """(P,) float in [0, 1) for the pairs of fragment ids (a, b), a < b:
        a hash of the pair (and the frame, if ``per_frame``), not an RNG stream,
        so a pair's draw does not depend on which other pairs a frame holds."""
        f = np.full(a.shape, (frame_id if self.per_frame else 0) + self.salt, np.uint64)
        h = (  # uint64 arrays wrap silently (scalars would warn)
            a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            ^ b.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
            ^ f * np.uint64(0x165667B19E3779F9)
        )
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
        return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _neighbours(lab: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Views pairing each pixel of a label image with its right, lower and two
    diagonal neighbours (8-connectivity, each pair once)."""
    return (
        (lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :]),
        (lab[:-1, :-1], lab[1:, 1:]), (lab[:-1, 1:], lab[1:, :-1]),
    )  # fmt: skip


def touching_pairs(lab: np.ndarray) -> np.ndarray:
    """(P, 2) int64 unique pairs (a < b) of fragment ids whose pixels touch
    (8-neighbours) in a label image (-1 belt)."""
    found = []
    for x, y in _neighbours(lab):
        m = (x >= 0) & (y >= 0) & (x != y)
        if m.any():
            found.append(np.column_stack([np.minimum(x[m], y[m]), np.maximum(x[m], y[m])]))
    if not found:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(found), axis=0)


def merged_detections(
    truth: Any,
    geometry: Any,
    n_classes: int,
    model: MergeModel,
    tally: dict[str, int] | None = None,
) -> Detections:
    """The truth's visible fragments (as ``truth-segments``), touching pairs
    merged by ``model``: a merged segment spans its members' extents, takes
    the class of the member with most visible pixels and, with ``model.flag``,
    the merge flag. ``tally`` (if given) counts the kept fragments touching
    another kept one (``touching``) and those of them in a merged segment
    (``touching_merged``, comparable to ``sortline bench vision --study``'s)."""
    single, fid = truth_detections(truth, geometry, n_classes)
    n = len(fid)
    if n < 2:
        return single
    lab = truth.label_image()
    pairs = touching_pairs(lab)
    row_of = {int(f): k for k, f in enumerate(fid.tolist())}
    touch = np.zeros(n, np.bool_)
    for a, b in pairs.tolist():
        ra, rb = row_of.get(a), row_of.get(b)
        if ra is not None and rb is not None:
            touch[ra] = touch[rb] = True
    if tally is not None:
        tally["touching"] += int(touch.sum())
    if model.rate <= 0.0:
        return single
    parent = list(range(n))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    if len(pairs):
        go = model.draws(pairs[:, 0], pairs[:, 1], int(truth.frame_id)) < model.rate
        for a, b in pairs[go].tolist():
            ra, rb = row_of.get(a), row_of.get(b)
            if ra is not None and rb is not None:
                parent[root(ra)] = root(rb)
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(root(k), []).append(k)
    if tally is not None:
        tally["touching_merged"] += sum(len(g) for g in groups.values() if len(g) > 1)
    if len(groups) == n:
        return single
    ids, counts = np.unique(lab[lab >= 0], return_counts=True)
    visible = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    members = list(groups.values())
    lead = np.array([max(g, key=lambda k: visible.get(int(fid[k]), 0)) for g in members])
    ext = np.array(
        [[single.extent_mm[g, 0].min(), single.extent_mm[g, 1].max(),
          single.extent_mm[g, 2].min(), single.extent_mm[g, 3].max()] for g in members]
    )  # fmt: skip
    box = np.array(
        [[single.bbox_px[g, 0].min(), single.bbox_px[g, 1].min(),
          single.bbox_px[g, 2].max(), single.bbox_px[g, 3].max()] for g in members],
        np.float32,
    )  # fmt: skip
    cls = single.class_id[lead]
    prob, conf = _one_hot(cls.astype(np.int64), n_classes)
    merged = np.array([len(g) > 1 and model.flag for g in members], np.bool_)
    return Detections(
        frame_id=single.frame_id, tick=single.tick, bbox_px=box,
        centroid_mm=np.column_stack([ext[:, :2].mean(1), ext[:, 2:].mean(1)]),
        extent_mm=ext,
        area_mm2=((ext[:, 1] - ext[:, 0]) * (ext[:, 3] - ext[:, 2])).astype(np.float32),
        class_id=cls.astype(np.int16), confidence=conf, class_prob=prob, merged=merged,
    )  # fmt: skip
