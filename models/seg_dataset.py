"""Training data for the learned instance cue (``models/seg_train.py``).

Virtual-plant frames with their truth label images, at the segmentation's
working resolution (``SegmentParams.scale``, 640x256 for the default
camera): per sample the downsampled frame, the line's own belt model (its
mean colour) and foreground mask as the line computes them
(``vision.segment.Segmenter`` run over consecutive frames), and two targets
from the plant's truth:

- ``core``: per fragment, the distance to the nearest pixel not of that
  fragment (belt or another fragment) over the fragment's largest such
  distance, 0..1 (uint8 0..255); cores of two touching fragments are apart.
- ``contact``: fragment pixels within one pixel of another fragment's pixel.
- ``material`` (seg-v2): per pixel the class index (``core.classes.DEFAULT_CLASSES``,
  the line's ``[line] classes``) of the fragment there, ``IGNORE`` on the belt
  (``material_from_labels``).

Everything here is synthetic (``sim/``); seeds are recorded so training,
validation and the line's benchmark seeds (101, 202) stay apart.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

__all__ = ["IGNORE", "SegRun", "SegSet", "material_from_labels", "targets_from_labels"]

IGNORE = 255  # ``material`` of belt pixels: not in the loss


@dataclasses.dataclass(frozen=True, slots=True)
class SegRun:
    """One plant run: preset (or scenario file), feed (0 = its own), belt m/s, seed."""

    preset: str
    feed_obj_s: float
    speed_m_s: float
    seed: int

    def label(self) -> str:
        return f"{self.preset}:{self.feed_obj_s:g}@{self.speed_m_s:g}m/s#{self.seed}"


@dataclasses.dataclass(frozen=True, slots=True)
class SegSet:
    """Samples at the segmentation's resolution (N samples of h x w).

    small: (N, h, w, 3) uint8 BGR frame; belt: (N, h, w, 3) uint8 belt model mean;
    fg: (N, h, w) uint8 foreground mask (0/255); core, contact: (N, h, w) uint8
    targets (0..255, 0/255); runs: the runs they came from; material: (N, h, w)
    uint8 class index per pixel, ``IGNORE`` on the belt (None: not rendered).
    """

    small: np.ndarray
    belt: np.ndarray
    fg: np.ndarray
    core: np.ndarray
    contact: np.ndarray
    runs: tuple[str, ...]
    material: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.small.shape[0])


def targets_from_labels(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) int fragment ids (-1 belt) -> ``core`` and ``contact`` (h, w) uint8."""
    h, w = lab.shape
    edge = np.zeros((h, w), bool)  # a 4-neighbour with another id (belt included)
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge |= lab < 0
    dist = cv2.distanceTransform((~edge).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5) + 1.0
    frag = lab >= 0
    core = np.zeros((h, w), np.uint8)
    if frag.any():
        _, inv = np.unique(lab[frag], return_inverse=True)
        top = np.zeros(int(inv.max()) + 1, np.float32)
        np.maximum.at(top, inv, dist[frag])
        core[frag] = np.clip(255.0 * dist[frag] / top[inv], 0, 255).astype(np.uint8)
    other = np.zeros((h, w), bool)  # next to a pixel of another fragment (8-neighbours)
    pad = np.pad(lab, 1, constant_values=-1)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            nb = pad[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
            other |= (nb >= 0) & (nb != lab)
    contact = np.where(frag & other, 255, 0).astype(np.uint8)
    return core, contact


def material_from_labels(lab: np.ndarray, ids: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """(h, w) int fragment ids (-1 belt), the (N,) fragment ids of the truth and their
    (N,) class indices -> (h, w) uint8 class index per pixel, ``IGNORE`` on the belt
    and on any id the truth does not name."""
    out = np.full(lab.shape, IGNORE, np.uint8)
    frag = lab >= 0
    if not frag.any() or ids.size == 0:
        return out
    order = np.argsort(ids)
    sid, scl = ids[order], class_ids[order]
    v = lab[frag]
    at = np.clip(np.searchsorted(sid, v), 0, sid.size - 1)
    known = sid[at] == v
    got = np.full(v.shape, IGNORE, np.uint8)
    got[known] = scl[at[known]].astype(np.uint8)
    out[frag] = got
    return out
