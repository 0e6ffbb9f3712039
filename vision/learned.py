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

The net's cost is per pixel read (about 45 ns a low-res pixel, one thread), so
it reads only what may be a merge and has changed (``core_map``): the box of
each component large enough to split, with 2 px of context, packed side by
side into one atlas and run as one ONNX call; a component whose mask matches
one of the last frame's keeps that component's core (``cue.memory``). On
``crowded`` and 25 mm shred at 500/s it reads 0.15-0.20 of the frame's pixels
a frame. Against reading the window around all large components
(``core_map_window``, as first shipped: most of a busy frame) the merges it
leaves are the same (``bench/README.md``, issue 15).

seg-v2 adds a per-pixel *material* output (class logits over the line's
classes, named in the model's metadata ``sortline.classes``): most touching
fragments the cores leave merged are two materials to the eye (red metal on
grey). A pixel takes its argmax class where the net gives it at least
``learned_material_conf`` (else none); a core region that holds two classes,
each a connected region of at least ``learned_min_seed_px``, becomes two seeds,
and a component with a single seed but two classes each a connected region of
at least ``learned_material_px`` is seeded by those regions (``split_learned``).
A seg-v1 file (core and contact only) runs as before.

The material head also calls parts of *one* fragment two classes (brass and
copper, a battery's wrap, a plastic's print): on ``default`` most of its cuts
were of that kind (session 13, ``models/seg-v2.md``). So a cut the materials
made stands only where the net's contact output lines the seam between the
two pieces (``learned_seam_contact``; the seam rule, ``split_learned``).
Every component's seeds come from one Numba kernel (``vision.kernels_learned``).

The model file is checked on load: a missing, unreadable or wrongly shaped
file is refused with one line naming the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from core.errors import InputFileError
from vision.kernels_learned import (
    _component_seeds,
    _frame_seeds,
    _material_labels,
    _piece_classes,
    _seam_merge,
)
from vision.kernels_split import _fill_ridges, _write_pieces

__all__ = [
    "DIFF_SCALE",
    "KIND",
    "NO_MATERIAL",
    "CoreMemory",
    "InstanceCue",
    "LearnedParams",
    "candidates",
    "core_map",
    "core_map_window",
    "material_labels",
    "material_seeds",
    "net_input",
    "pack_rois",
    "roi_boxes",
    "split_learned",
]

DIFF_SCALE = 64.0  # net input: (frame - belt) BGR / DIFF_SCALE, then the mask 0/1
KIND = "instance-cue"  # the ONNX metadata ``sortline.kind`` this module accepts
ROI_MARGIN_PX = 2  # low-res px of context around each component the cue reads
WINDOW_MARGIN_PX = 32  # ... around all of them (``core_map_window``)
ATLAS_GAP_PX = 2  # low-res px of zeros between boxes in the atlas
ATLAS_BORDER_PX = 0  # ... and around them
REUSE_IOU = 0.85  # a component whose mask overlaps a last frame's this much takes its core
REUSE_SIZE_PX = 2  # ... if their boxes' sides differ by at most this (low-res px)
REUSE_AREA = 0.05  # ... and their areas by at most this fraction
NO_MATERIAL = 255  # the material map where the net is unsure (or has no material head)
# a class's region seeds a piece only if it is coherent: its largest connected region
# holds at least this share of the class's pixels there (texture the net calls another
# class in scattered patches, rust on steel, is not)
MATERIAL_COHERENCE = 0.7
SEAM_RADIUS_PX = 2  # a seam pixel shows contact if a contact pixel is this near (low-res px)


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

    @property
    def learned_material_conf(self) -> float: ...

    @property
    def learned_material_px(self) -> float: ...

    @property
    def learned_contact(self) -> float: ...

    @property
    def learned_seam_contact(self) -> float: ...

    @property
    def learned_seam_cores(self) -> bool: ...


def net_input(small: np.ndarray, belt: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """(..., h, w, 3) uint8 frame and belt model, (..., h, w) uint8 mask ->
    (..., 4, h, w) float32: (frame - belt) BGR / ``DIFF_SCALE`` and the mask 0/1."""
    diff = (small.astype(np.float32) - belt.astype(np.float32)) / np.float32(DIFF_SCALE)
    x = np.concatenate([diff, (fg > 0).astype(np.float32)[..., None]], axis=-1)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


class InstanceCue:
    """The ONNX instance cue: ``predict`` -> per-pixel core and contact probabilities;
    with a material head (``classes`` not empty) also ``predict_material``."""

    def __init__(self, session: Any, path: Path, classes: tuple[str, ...] = ()) -> None:
        self.session = session
        self.path = path
        self.classes = classes  # the material head's classes; () for none (seg-v1)
        self._in = session.get_inputs()[0].name
        self.memory = CoreMemory()  # the last frame's cores (``core_map``)
        # the last frame's (h, w) uint8 material class index (``NO_MATERIAL``: none),
        # set by ``core_map``; None for a cue without a material head
        self.material: np.ndarray | None = None
        # the last frame's (h, w) bool contact map (``core_map``: the net's contact
        # probability at least ``learned_contact``); None before the first frame
        self.contact: np.ndarray | None = None

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
        if len(outs) not in (1, 2) or len(outs[0].shape) != 4 or outs[0].shape[1] != 2:
            raise InputFileError(p, "output must be (1, 2, h, w) [and (1, classes, h/2, w/2)], "
                                 f"got {[o.shape for o in outs]}")  # fmt: skip
        classes: tuple[str, ...] = ()
        if len(outs) == 2:
            classes = _classes(sess, p)
            n_c = len(classes)
            if len(outs[1].shape) != 4 or outs[1].shape[1] != n_c:
                raise InputFileError(p, f"material output must be (1, {n_c}, h/2, w/2) "
                                     f"for {n_c} classes, got {outs[1].shape}")  # fmt: skip
        warm_split_kernels()  # at start-up, not on the loop's first touching fragments
        return cls(sess, p, classes)

    def predict_core(self, small: np.ndarray, belt: np.ndarray, fg: np.ndarray) -> np.ndarray:
        """As ``predict``: the (h, w) float32 core probability only."""
        y = self._run(small, belt, fg)[0][0]
        return np.ascontiguousarray(1.0 / (1.0 + np.exp(-y)))

    def predict_core_material(
        self, small: np.ndarray, belt: np.ndarray, fg: np.ndarray, conf: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(h, w) float32 core probability and (h, w) uint8 material class index: the
        argmax where its probability is at least ``conf``, else ``NO_MATERIAL`` (all
        ``NO_MATERIAL`` without a material head)."""
        core, mat, _ = self.predict_maps(small, belt, fg, conf, 0.5, fg_only=False)
        return core, mat

    def predict_maps(
        self,
        small: np.ndarray,
        belt: np.ndarray,
        fg: np.ndarray,
        conf: float,
        contact: float,
        fg_only: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``predict_core_material``, and the (h, w) bool contact map: the net's
        contact probability at least ``contact`` (its logit compared, no sigmoid).
        ``fg_only``: the material only where ``fg`` is (``material_labels``)."""
        y, mat = self._run(small, belt, fg)
        core = np.ascontiguousarray(1.0 / (1.0 + np.exp(-y[0])))
        c = min(max(contact, 1e-6), 1.0 - 1e-6)
        touch = np.ascontiguousarray(y[1] >= np.float32(np.log(c / (1.0 - c))))
        if mat is None:
            return core, np.full(fg.shape, NO_MATERIAL, np.uint8), touch
        return core, material_labels(mat, conf, fg.shape, fg if fg_only else None), touch

    def _run(
        self, small: np.ndarray, belt: np.ndarray, fg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(2, h, w) float32 logits (core, contact) and the material head's
        (classes, ceil(h/2), ceil(w/2)) logits (None without one)."""
        h, w = fg.shape
        x = net_input(small, belt, fg)[None]
        ph, pw = h + (h & 1), w + (w & 1)  # the net halves and doubles: even sizes
        if (ph, pw) != (h, w):
            x = np.pad(x, ((0, 0), (0, 0), (0, ph - h), (0, pw - w)))
        outs = self.session.run(None, {self._in: x})
        y: np.ndarray = outs[0][0, :, :h, :w]
        return y, (outs[1][0] if len(outs) > 1 else None)

    def predict(
        self, small: np.ndarray, belt: np.ndarray, fg: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 3) uint8 frame and belt model, (h, w) uint8 mask at the segmentation's
        resolution -> (h, w) float32 core and contact probabilities."""
        prob = 1.0 / (1.0 + np.exp(-self._run(small, belt, fg)[0]))
        return np.ascontiguousarray(prob[0]), np.ascontiguousarray(prob[1])


def _classes(sess: Any, p: Path) -> tuple[str, ...]:
    """The material head's class names (metadata ``sortline.classes``, a JSON list)."""
    raw = sess.get_modelmeta().custom_metadata_map.get("sortline.classes")
    try:
        names = json.loads(raw) if raw is not None else None
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise InputFileError(p, f"material output but no class list (metadata {raw!r})",
                             field="sortline.classes")  # fmt: skip
    return tuple(names)


def material_labels(
    logits: np.ndarray, conf: float, shape: tuple[int, int], fg: np.ndarray | None = None
) -> np.ndarray:
    """(C, h2, w2) material logits at half resolution -> (h, w) = ``shape`` uint8 class
    index (each half-res pixel repeated 2 x 2): the argmax where its softmax
    probability is at least ``conf``, else ``NO_MATERIAL`` (also where a net output
    smaller than half does not reach, and, given ``fg`` ((h, w) mask), in 2 x 2
    blocks with no foreground: the split reads fragments' pixels only). One pass of
    a Numba kernel: per pixel the top logit and the sum of exp(logit - top), no
    probability map."""
    if logits.ndim != 3 or not 0 < logits.shape[0] < NO_MATERIAL:
        raise ValueError(f"material_labels: logits must be (C, h, w), 0 < C < 255, "
                         f"got {logits.shape}")  # fmt: skip
    if fg is not None and fg.shape != shape:
        raise ValueError(f"material_labels: fg must be {shape}, got {fg.shape}")
    out = np.empty(shape, np.uint8)
    mask = np.zeros((0, 0), np.uint8) if fg is None else np.ascontiguousarray(fg).view(np.uint8)
    _material_labels(np.ascontiguousarray(logits, np.float32), float(max(conf, 1e-9)), mask, out)
    return out


def candidates(stats: np.ndarray, p: LearnedParams) -> np.ndarray:
    """(k,) int64 label values of the components large enough to split
    (``split_min_area_px``); ``stats``: cv2 CC_STAT rows, row 0 the belt."""
    big = stats[1:, cv2.CC_STAT_AREA] >= p.split_min_area_px / float(p.scale * p.scale)
    return np.flatnonzero(big) + 1


def roi_boxes(stats: np.ndarray, margin_px: int, h: int, w: int) -> np.ndarray:
    """(k, 4) int64 y0, x0, y1, x1 (low-res px, ends exclusive): each stats row's box
    widened by ``margin_px`` and clipped to the (h, w) frame; y0 and x0 even, as the
    net's stride-2 layer samples the frame, so a box reads what the frame would."""
    x0 = stats[:, cv2.CC_STAT_LEFT].astype(np.int64)
    y0 = stats[:, cv2.CC_STAT_TOP].astype(np.int64)
    x1 = x0 + stats[:, cv2.CC_STAT_WIDTH].astype(np.int64) + margin_px
    y1 = y0 + stats[:, cv2.CC_STAT_HEIGHT].astype(np.int64) + margin_px
    x0 = np.maximum(x0 - margin_px, 0) & ~1
    y0 = np.maximum(y0 - margin_px, 0) & ~1
    return np.stack([y0, x0, np.minimum(y1, h), np.minimum(x1, w)], axis=1)


def pack_rois(
    sizes: np.ndarray, width_px: int, gap_px: int = ATLAS_GAP_PX, border_px: int = 0
) -> tuple[np.ndarray, int, int]:
    """Shelf packing of (k, 2) box sizes (rows, columns) into one atlas at most
    ``width_px`` wide inside a ``border_px`` frame (wider only for a wider box),
    tallest boxes first, ``gap_px`` apart, even offsets. Returns (k, 2) int64 row,
    column offsets and the atlas's (even) height and width."""
    k = sizes.shape[0]
    at = np.zeros((k, 2), np.int64)
    if k == 0:
        return at, 0, 0
    width = max(int(width_px), int(sizes[:, 1].max()))
    y = x = shelf_h = used_w = 0
    for i in np.argsort(-sizes[:, 0], kind="stable").tolist():
        bh, bw = int(sizes[i, 0]), int(sizes[i, 1])
        if x > 0 and x + bw > width:
            y, x, shelf_h = _even(y + shelf_h + gap_px), 0, 0
        at[i] = y, x
        shelf_h = max(shelf_h, bh)
        used_w = max(used_w, x + bw)
        x = _even(x + bw + gap_px)
    b = _even(border_px)
    return at + b, _even(y + shelf_h) + 2 * b, _even(used_w) + 2 * b


def _even(n: int) -> int:
    return n + (n & 1)


@dataclasses.dataclass(slots=True)
class CoreMemory:
    """The components ``core_map`` saw in the last frame: box sizes (k, 2) rows,
    columns; areas (k,) low-res px; per component its box's foreground mask (bool),
    core (float32), material (uint8, ``material_labels``; empty without a head) and
    contact (bool)."""

    sizes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.int64))
    area: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    masks: list[np.ndarray] = dataclasses.field(default_factory=list)
    cores: list[np.ndarray] = dataclasses.field(default_factory=list)
    mats: list[np.ndarray] = dataclasses.field(default_factory=list)
    contacts: list[np.ndarray] = dataclasses.field(default_factory=list)


def core_map(
    cue: InstanceCue,
    small: np.ndarray,
    belt: np.ndarray,
    fg: np.ndarray,
    stats: np.ndarray,
    p: LearnedParams,
    margin_px: int = ROI_MARGIN_PX,
    border_px: int = ATLAS_BORDER_PX,
    gap_px: int = ATLAS_GAP_PX,
    reuse_iou: float | None = REUSE_IOU,
) -> np.ndarray:
    """(h, w) float32 core probability in the components large enough to split
    (``split_min_area_px``), 0 elsewhere; the net reads only their boxes, and only
    those of components it did not see in the last frame.

    A fragment stays in view for about 15 frames and mostly keeps its outline: a
    component whose box's foreground mask matches one of the last frame's
    (``cue.memory``: sides within ``REUSE_SIZE_PX``, area within ``REUSE_AREA``,
    masks centred on each other overlapping by ``reuse_iou`` of their union; None:
    never) takes that component's core. The others' boxes, widened by ``margin_px``
    low-res px of context (``roi_boxes``), are copied into one atlas (``pack_rois``;
    zeros between boxes read as belt to the net) and the net runs once on it: the
    cost follows the components that are new or changed, not the frame. Each box
    writes back its component's box (where boxes overlap, the later one's;
    ``split_learned`` reads a component's own pixels, at the centre of its box).

    A cue with a material head also sets ``cue.material``: (h, w) uint8 class index
    (``material_labels`` at ``p.learned_material_conf``) in the same boxes,
    ``NO_MATERIAL`` elsewhere; remembered and reused with the cores. Every cue sets
    ``cue.contact``: (h, w) bool, the net's contact probability at least
    ``p.learned_contact`` in the same boxes (``split_learned``'s seam rule)."""
    h, w = fg.shape
    core = np.zeros((h, w), np.float32)
    has_mat = bool(cue.classes)
    comps = candidates(stats, p)
    st = stats[comps, :5].astype(np.int64)
    masks = [fg[y : y + bh, x : x + bw] > 0 for x, y, bw, bh, _ in st.tolist()]
    cores: list[np.ndarray] = [np.zeros(m.shape, np.float32) for m in masks]
    mats: list[np.ndarray] = (
        [np.full(m.shape, NO_MATERIAL, np.uint8) for m in masks] if has_mat else []
    )
    touch: list[np.ndarray] = [np.zeros(m.shape, np.bool_) for m in masks]
    known = _recall(cue.memory, st, masks, cores, mats, touch, reuse_iou)
    read = np.flatnonzero(~known)
    if read.size:
        boxes = roi_boxes(stats[comps[read]], margin_px, h, w)
        sizes = boxes[:, 2:] - boxes[:, :2]
        # about square: shelves of a narrow atlas hold boxes of more alike heights
        at, at_h, at_w = pack_rois(
            sizes, int(np.sqrt(float((sizes[:, 0] * sizes[:, 1]).sum()))), gap_px, border_px
        )
        a_small = np.zeros((at_h, at_w, 3), np.uint8)
        a_belt = np.zeros((at_h, at_w, 3), np.uint8)
        a_fg = np.zeros((at_h, at_w), np.uint8)
        for (y0, x0, y1, x1), (ay, ax) in zip(boxes.tolist(), at.tolist(), strict=True):
            win, dst = np.s_[y0:y1, x0:x1], np.s_[ay : ay + y1 - y0, ax : ax + x1 - x0]
            a_small[dst], a_belt[dst], a_fg[dst] = small[win], belt[win], fg[win]
        got, got_mat, got_touch = cue.predict_maps(
            a_small, a_belt, a_fg, p.learned_material_conf, p.learned_contact
        )
        for i, (y0, x0, _, _), (ay, ax) in zip(
            read.tolist(), boxes.tolist(), at.tolist(), strict=True
        ):
            c0, r0, cw, ch = st[i, :4].tolist()
            ar, ac = ay + r0 - y0, ax + c0 - x0
            cores[i] = got[ar : ar + ch, ac : ac + cw]
            touch[i] = got_touch[ar : ar + ch, ac : ac + cw]
            if has_mat:
                mats[i] = got_mat[ar : ar + ch, ac : ac + cw]
    contact = np.zeros((h, w), np.bool_)
    for (c0, r0, cw, ch, _), c, t in zip(st.tolist(), cores, touch, strict=True):
        core[r0 : r0 + ch, c0 : c0 + cw] = c
        contact[r0 : r0 + ch, c0 : c0 + cw] = t
    cue.contact = contact
    if has_mat:
        material = np.full((h, w), NO_MATERIAL, np.uint8)
        for (c0, r0, cw, ch, _), m in zip(st.tolist(), mats, strict=True):
            material[r0 : r0 + ch, c0 : c0 + cw] = m
        cue.material = material
    cue.memory = CoreMemory(
        st[:, 2:4][:, ::-1].copy(), st[:, 4].astype(np.float64), masks, cores, mats, touch
    )
    return core


def _recall(
    mem: CoreMemory,
    st: np.ndarray,
    masks: list[np.ndarray],
    cores: list[np.ndarray],
    mats: list[np.ndarray],
    touch: list[np.ndarray],
    reuse_iou: float | None,
) -> np.ndarray:
    """(k,) bool: components (``st`` rows: left, top, width, height, area) whose mask
    matches one in ``mem``; their ``cores``, ``touch`` (and ``mats``, when both hold
    materials) are set from it (centred)."""
    k = st.shape[0]
    known = np.zeros(k, np.bool_)
    if reuse_iou is None or k == 0 or mem.sizes.shape[0] == 0:
        return known
    area = st[:, 4].astype(np.float64)
    close = (
        (np.abs(st[:, 3, None] - mem.sizes[None, :, 0]) <= REUSE_SIZE_PX)
        & (np.abs(st[:, 2, None] - mem.sizes[None, :, 1]) <= REUSE_SIZE_PX)
        & (np.abs(area[:, None] - mem.area[None, :]) <= REUSE_AREA * area[:, None])
    )
    for i, j in zip(*np.nonzero(close), strict=True):
        if known[i]:
            continue
        m = masks[i]
        prev = _centred(mem.masks[j], m.shape)
        if np.count_nonzero(prev & m) >= reuse_iou * np.count_nonzero(prev | m):
            cores[i] = _centred(mem.cores[j], m.shape)
            if mem.contacts:
                touch[i] = _centred(mem.contacts[j], m.shape, False)
            if mats and mem.mats:
                mats[i] = _centred(mem.mats[j], m.shape, NO_MATERIAL)
            known[i] = True
    return known


def _centred(a: np.ndarray, shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """``a`` centred in an array of ``shape`` filled with ``fill`` (cut where it does
    not fit); ``a`` itself when it has that shape."""
    if a.shape == shape:
        return a
    out = np.full(shape, fill, a.dtype)
    dy, dx = (shape[0] - a.shape[0]) // 2, (shape[1] - a.shape[1]) // 2
    sy, sx, ty, tx = max(-dy, 0), max(-dx, 0), max(dy, 0), max(dx, 0)
    ch, cw = min(a.shape[0] - sy, shape[0] - ty), min(a.shape[1] - sx, shape[1] - tx)
    out[ty : ty + ch, tx : tx + cw] = a[sy : sy + ch, sx : sx + cw]
    return out


def core_map_window(
    cue: InstanceCue,
    small: np.ndarray,
    belt: np.ndarray,
    fg: np.ndarray,
    stats: np.ndarray,
    p: LearnedParams,
    margin_px: int = WINDOW_MARGIN_PX,
) -> np.ndarray:
    """``core_map``'s slow twin (the cue as first shipped): the net reads the one
    window around all components large enough to split, widened by ``margin_px``
    (on a busy belt most of the frame); (h, w) float32 core probability in that
    window, 0 elsewhere."""
    h, w = fg.shape
    core = np.zeros((h, w), np.float32)
    comps = candidates(stats, p)
    if comps.size == 0:
        return core
    boxes = roi_boxes(stats[comps], margin_px, h, w)
    y0, x0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    y1, x1 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    win = np.s_[y0:y1, x0:x1]
    core[win] = cue.predict_core(small[win], belt[win], fg[win])
    return core


def split_learned(
    small: np.ndarray,
    labels: np.ndarray,
    stats: np.ndarray,
    centroids: np.ndarray,
    core: np.ndarray,
    p: LearnedParams,
    material: np.ndarray | None = None,
    contact: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split components with two or more seeds, in place on ``labels`` ((h, w)
    int32); new pieces get label values from ``len(stats)`` on. Returns stats
    (float64, cv2 CC_STAT columns) and centroids (column, row), a row per label
    value. ``core``: (h, w) float32 0..1 at the labels' resolution; the seeds are
    its regions of at least ``learned_min_seed_px``, cut by ``material`` ((h, w)
    uint8 class index, ``NO_MATERIAL`` unsure; None: no cut) where they hold two
    classes (``material_seeds``).

    The seam rule (``contact``: (h, w) bool, the net's contact map; None: no rule):
    a cut the materials made (one core region in two, or a one-core component by
    its material regions; with ``learned_seam_cores`` also a cut between two cores
    whose pieces are mostly one class) stands only where
    at least ``learned_seam_contact`` of the seam between the two pieces lies
    within ``SEAM_RADIUS_PX`` of contact; else the pieces stay one. The material
    head calls parts of one fragment two classes (brass and copper, a battery's
    wrap, a plastic's print) far more often than the contact head sees a contact
    inside a fragment (``models/seg-v2.md``, session 13)."""
    n = stats.shape[0]
    s2 = float(p.scale * p.scale)
    min_seed = p.learned_min_seed_px / s2
    min_mat = p.learned_material_px / s2
    share = float(p.learned_seam_contact) if contact is not None else 0.0
    rows, cents = [stats], [np.asarray(centroids, np.float64)]
    dist = np.zeros(labels.shape, np.float32)  # ``_write_pieces`` reports a max over it
    next_label = n
    comps = candidates(stats, p)
    if comps.size == 0:
        return stats, centroids
    boxes = np.ascontiguousarray(stats[comps, :4], np.int64)
    mat = np.full(labels.shape, NO_MATERIAL, np.uint8) if material is None else material
    seeded_all = np.zeros(labels.shape, np.int32)
    # every component's seeds in one kernel call (most have fewer than two)
    g_all, offsets, origins = _frame_seeds(
        labels, np.ascontiguousarray(core, np.float32), np.ascontiguousarray(mat, np.uint8),
        comps.astype(np.int64), boxes, float(p.learned_core), min_seed, min_mat,
        MATERIAL_COHERENCE, seeded_all,
    )  # fmt: skip
    for i in np.flatnonzero(g_all >= 2).tolist():
        lab, g_n = int(comps[i]), int(g_all[i])
        x, y, w, h = boxes[i].tolist()
        own = labels[y : y + h, x : x + w] == lab
        seeded = seeded_all[y : y + h, x : x + w]
        origin = origins[offsets[i] : offsets[i] + g_n + 1]
        markers = np.full((h + 2, w + 2), g_n + 1, np.int32)
        inner = markers[1:-1, 1:-1]
        inner[own] = 0
        mine = own & (seeded > 0)
        inner[mine] = seeded[mine]
        roi = cv2.copyMakeBorder(small[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
        cv2.watershed(roi, markers)
        if share > 0.0:
            cls = (
                _piece_classes(markers, mat[y : y + h, x : x + w], g_n)
                if p.learned_seam_cores
                else np.full(g_n + 1, NO_MATERIAL, np.int64)
            )
            g_n = _seam_merge(markers, contact, y, x, origin, cls, g_n, share, SEAM_RADIUS_PX)
            if g_n < 2:
                continue
        _fill_ridges(markers)
        ids = np.array([lab, *range(next_label, next_label + g_n - 1)], np.int32)
        st = np.zeros((g_n, 5), np.float64)
        ce = np.zeros((g_n, 2), np.float64)
        _write_pieces(labels, markers, lab, y, x, ids, st, ce, dist, np.zeros(g_n, np.float32))
        rows[0][lab], cents[0][lab] = st[0], ce[0]
        rows.append(st[1:])
        cents.append(ce[1:])
        next_label += g_n - 1
    if len(rows) == 1:
        return stats, centroids
    return np.vstack(rows), np.vstack(cents)


def material_seeds(
    own: np.ndarray,
    mk: np.ndarray,
    mat: np.ndarray,
    min_seed: float,
    min_mat: float,
) -> tuple[np.ndarray, int, np.ndarray]:
    """One component's seeds in its box: (h, w) int32 seed number (0 none, 1..g), g,
    and (g + 1,) int64 each seed's origin (its core region; 0: the component's
    material regions).

    ``own``: (h, w) bool the component's pixels; ``mk``: (h, w) int32 core regions
    (0 none), those of at least ``min_seed`` low-res px seed; ``mat``: (h, w) uint8
    material class index (``NO_MATERIAL`` unsure). When the core pixels hold two
    classes of at least ``min_seed`` pixels each, or the component two of at least
    ``min_mat``: a core region whose pixels hold two or more classes each forming a
    coherent connected region of at least ``min_seed`` (``MATERIAL_COHERENCE`` of
    the class's pixels there) gives one seed per class (that region); the others
    one seed each. When that leaves fewer than two seeds but the component holds
    two or more classes each forming a coherent connected region of at least
    ``min_mat``, those regions are the seeds (one material each). Else one seed
    per core region. (A Numba kernel, ``_component_seeds``; its NumPy twin is in
    ``tests/vision/test_learned_kernels.py``.)"""
    if not own.shape == mk.shape == mat.shape or own.ndim != 2:
        raise ValueError(f"material_seeds: own, mk and mat must be one (h, w) shape, got "
                         f"{own.shape}, {mk.shape}, {mat.shape}")  # fmt: skip
    mk32 = np.ascontiguousarray(mk, np.int32)
    n_m = int(mk32.max(initial=0)) + 1
    return _component_seeds(
        np.ascontiguousarray(own, np.bool_), mk32, n_m, np.ascontiguousarray(mat, np.uint8),
        float(min_seed), float(min_mat), MATERIAL_COHERENCE,
    )  # fmt: skip


def warm_split_kernels() -> None:
    """Compile (or load from Numba's cache) the learned split's kernels with the
    argument types the line passes, on a hand-built 40 x 60 low-res scene: a
    plate of two materials with one core across them (the materials' cut, judged
    by the seam rule; and with ``learned_seam_cores`` the pieces' classes), and
    material logits. ``InstanceCue.load`` calls it, so a fresh install does not
    compile them on the loop's first frames."""
    h, w = 40, 60
    labels = np.zeros((h, w), np.int32)
    labels[5:35, 5:55] = 1
    stats = np.array([[0, 0, w, h, h * w - 1500], [5, 5, 50, 30, 1500]], np.float64)
    cents = np.array([[30.0, 20.0], [29.5, 19.5]])
    core = np.zeros((h, w), np.float32)
    core[12:28, 15:45] = 0.9
    mat = np.full((h, w), NO_MATERIAL, np.uint8)
    mat[5:35, 5:30], mat[5:35, 30:55] = 3, 0
    contact = np.zeros((h, w), np.bool_)
    contact[5:35, 28:32] = True
    small = np.full((h, w, 3), 120, np.uint8)
    from vision.segment import SegmentParams  # here: vision.segment imports this module

    base = SegmentParams()  # the line's parameter types, not a copy of its defaults
    for p in (base, dataclasses.replace(base, learned_seam_cores=True)):
        split_learned(small, labels.copy(), stats.copy(), cents.copy(), core, p, mat, contact)
    material_labels(np.zeros((3, h // 2, w // 2), np.float32), 0.4, (h, w), labels > 0)
