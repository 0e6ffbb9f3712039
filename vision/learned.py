"""Touching fragments split by a learned instance cue (``SegmentParams.segmenter
= "learned"``).

Measured on the plant's truth (``sortline bench vision --study``), the shape,
notch and colour cues of ``vision.split`` leave two in three touching
fragments merged at load. Here a small fully-convolutional net
(``models/seg_train.py``, ONNX, run with ONNX Runtime) reads the frame minus
the belt model and the foreground mask at the segmentation's resolution and
predicts per pixel the *core* of a fragment: its distance to its own edge
(belt or another fragment) over the fragment's largest, 0..1. Cores of two
touching fragments lie apart even where their union has no neck, notch or
colour edge. Each large component's core regions (``learned_core`` and more,
at least ``learned_min_seed_px``) seed a marker watershed on the colour image
(``cv2.watershed``, as ``vision.split``); a component with one core region
stays whole. The model's second output (contact: pixels next to another
fragment) is for diagnostics.

The model file is checked on load: a missing, unreadable or wrongly shaped
file is refused with one line naming the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from core.errors import InputFileError
from vision.kernels_split import _fill_ridges, _write_pieces

__all__ = [
    "DIFF_SCALE",
    "KIND",
    "InstanceCue",
    "LearnedParams",
    "core_map",
    "net_input",
    "split_learned",
]

DIFF_SCALE = 64.0  # net input: (frame - belt) BGR / DIFF_SCALE, then the mask 0/1
KIND = "instance-cue"  # the ONNX metadata ``sortline.kind`` this module accepts
CONTEXT_PX = 32  # low-res px of context around the components the cue reads


class LearnedParams(Protocol):
    """The ``SegmentParams`` fields the learned split reads (lengths in full-res px)."""

    @property
    def scale(self) -> int: ...

    @property
    def split_min_area_px(self) -> float: ...

    @property
    def learned_core(self) -> float: ...

    @property
    def learned_min_seed_px(self) -> float: ...


def net_input(small: np.ndarray, belt: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """(..., h, w, 3) uint8 frame and belt model, (..., h, w) uint8 mask ->
    (..., 4, h, w) float32: (frame - belt) BGR / ``DIFF_SCALE`` and the mask 0/1."""
    diff = (small.astype(np.float32) - belt.astype(np.float32)) / np.float32(DIFF_SCALE)
    x = np.concatenate([diff, (fg > 0).astype(np.float32)[..., None]], axis=-1)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


class InstanceCue:
    """The ONNX instance cue: ``predict`` -> per-pixel core and contact probabilities."""

    def __init__(self, session: Any, path: Path) -> None:
        self.session = session
        self.path = path
        self._in = session.get_inputs()[0].name

    @classmethod
    def load(cls, path: str | Path, intra_op_threads: int = 1) -> InstanceCue:
        """Open and check ``path``; ``InputFileError`` (one line) if anything is wrong."""
        from vision.classifier import open_session

        p = Path(path)
        if not str(path):
            raise InputFileError("[vision] segmenter_model", "no instance-cue model file given")
        if not p.is_file():
            raise InputFileError(p, "instance-cue model file not found")
        sess = open_session(p, intra_op_threads)
        try:
            kind = sess.get_modelmeta().custom_metadata_map.get("sortline.kind")
        except UnicodeDecodeError:
            kind = None
        if kind != KIND:
            raise InputFileError(p, f"not an instance-cue model (metadata kind {kind!r})",
                                 field="sortline.kind")  # fmt: skip
        ins, outs = sess.get_inputs(), sess.get_outputs()
        if len(ins) != 1 or len(ins[0].shape) != 4 or ins[0].shape[1] != 4:
            raise InputFileError(p, f"input must be (1, 4, h, w), got {[i.shape for i in ins]}")
        if len(outs) != 1 or len(outs[0].shape) != 4 or outs[0].shape[1] != 2:
            raise InputFileError(p, f"output must be (1, 2, h, w), got {[o.shape for o in outs]}")
        return cls(sess, p)

    def predict(
        self, small: np.ndarray, belt: np.ndarray, fg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 3) uint8 frame and belt model, (h, w) uint8 mask at the segmentation's
        resolution -> (h, w) float32 core and contact probabilities."""
        h, w = fg.shape
        x = net_input(small, belt, fg)[None]
        ph, pw = h + (h & 1), w + (w & 1)  # the net halves and doubles: even sizes
        if (ph, pw) != (h, w):
            x = np.pad(x, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)))
        y = self.session.run(None, {self._in: x})[0][0, :, :h, :w]
        prob = 1.0 / (1.0 + np.exp(-y))
        return np.ascontiguousarray(prob[0]), np.ascontiguousarray(prob[1])


def core_map(
    cue: InstanceCue,
    small: np.ndarray,
    belt: np.ndarray,
    fg: np.ndarray,
    stats: np.ndarray,
    p: LearnedParams,
    margin_px: int = CONTEXT_PX,
) -> np.ndarray:
    """(h, w) float32 core probability, computed only inside the box around the
    components large enough to split (``split_min_area_px``) widened by
    ``margin_px`` (low-res px, even offsets as the stride-2 layer); 0 elsewhere."""
    h, w = fg.shape
    core = np.zeros((h, w), np.float32)
    big = stats[1:, cv2.CC_STAT_AREA] >= p.split_min_area_px / float(p.scale * p.scale)
    if not big.any():
        return core
    st = stats[1:][big]
    x0 = int(st[:, cv2.CC_STAT_LEFT].min()) - margin_px
    y0 = int(st[:, cv2.CC_STAT_TOP].min()) - margin_px
    x1 = int((st[:, cv2.CC_STAT_LEFT] + st[:, cv2.CC_STAT_WIDTH]).max()) + margin_px
    y1 = int((st[:, cv2.CC_STAT_TOP] + st[:, cv2.CC_STAT_HEIGHT]).max()) + margin_px
    x0, y0 = max(x0, 0) & ~1, max(y0, 0) & ~1
    x1, y1 = min(x1, w), min(y1, h)
    win = (slice(y0, y1), slice(x0, x1))
    core[win] = cue.predict(small[win], belt[win], fg[win])[0]
    return core


def split_learned(
    small: np.ndarray,
    labels: np.ndarray,
    stats: np.ndarray,
    centroids: np.ndarray,
    core: np.ndarray,
    p: LearnedParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Split components with two or more core regions, in place on ``labels``
    ((h, w) int32); new pieces get label values from ``len(stats)`` on. Returns
    stats (float64, cv2 CC_STAT columns) and centroids (column, row), a row per
    label value. ``core``: (h, w) float32 0..1 at the labels' resolution."""
    n = stats.shape[0]
    s2 = float(p.scale * p.scale)
    area = stats[:, cv2.CC_STAT_AREA]
    is_big = area >= p.split_min_area_px / s2
    is_big[0] = False
    if not is_big.any():
        return stats, centroids
    seeds = ((core >= p.learned_core) & is_big[labels]).view(np.uint8)
    n_m, mk, mst, _ = cv2.connectedComponentsWithStats(seeds, connectivity=4, ltype=cv2.CV_32S)
    on = seeds.view(bool)
    comp_of = np.zeros(n_m, np.int64)
    comp_of[mk[on]] = labels[on]
    ok = mst[:, cv2.CC_STAT_AREA] >= p.learned_min_seed_px / s2
    ok[0] = False
    counts = np.bincount(comp_of[ok], minlength=n)
    multi = np.flatnonzero(counts >= 2)
    if multi.size == 0:
        return stats, centroids
    rows, cents = [stats], [np.asarray(centroids, np.float64)]
    dist = np.zeros(labels.shape, np.float32)  # ``_write_pieces`` reports a max over it
    next_label = n
    for lab in multi.tolist():
        mids = np.flatnonzero(ok & (comp_of == lab))
        g_n = int(mids.size)
        x, y, w, h = (int(v) for v in stats[lab, :4])
        lut = np.zeros(n_m, np.int32)
        lut[mids] = np.arange(1, g_n + 1, dtype=np.int32)
        markers = np.full((h + 2, w + 2), g_n + 1, np.int32)
        inner = markers[1:-1, 1:-1]
        inner[labels[y : y + h, x : x + w] == lab] = 0
        seeded = lut[mk[y : y + h, x : x + w]]
        inner[seeded > 0] = seeded[seeded > 0]
        roi = cv2.copyMakeBorder(small[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        cv2.watershed(roi, markers)
        _fill_ridges(markers)
        ids = np.array([lab, *range(next_label, next_label + g_n - 1)], np.int32)
        st = np.zeros((g_n, 5), np.float64)
        ce = np.zeros((g_n, 2), np.float64)
        _write_pieces(labels, markers, lab, y, x, ids, st, ce, dist, np.zeros(g_n, np.float32))
        rows[0][lab], cents[0][lab] = st[0], ce[0]
        rows.append(st[1:])
        cents.append(ce[1:])
        next_label += g_n - 1
    return np.vstack(rows), np.vstack(cents)
