"""The warm split (session 15, issue 15): a red metal against whatever it touches.

Cue 5 of the classic split (``vision.split``), tried after the chroma cue (a red
metal against a grey one) when that gives no cut. At 220-500 fragments/s most
segments that hold a target and a non-target hold a copper or brass piece
(the rest: batteries), and in about a third of those the other piece is not
grey: a green or blue PCB, dark rubber, a coloured or black plastic, or
several pieces at once (a copper strip between a steel plate and a PCB), where
the chroma cue's grey region is missing or is not one region. Counted on the
tuning seeds' frames (``/work/briefs/s15/h2_readme.md`` has the table).

Rule: a large component with at least ``split_warm_min_px`` red-metal pixels
(the chroma cue's pixel rule: (R - B) / (B + G + R) >= ``split_chroma_rb``, B +
G + R >= ``split_chroma_dark``; and B >= ``split_warm_blue`` x R: a metal reflects
every colour, so copper and brass keep B near 0.4 R where a yellow or red
battery wrap or plastic goes under 0.25, and such a wrap's band is not cut out)
and ``split_warm_piece_px`` other pixels inside its outline (a lone red piece's
blurred rim is not counted). Its red
pixels, opened 3x3, must be mostly one 4-connected region
(``split_chroma_coherence``) of at least ``split_warm_min_px``, solid
(``split_chroma_solidity`` of its hull: rust blotches and a PCB's pads are not);
every other pixel (grey, dark or any colour), opened 3x3, gives regions of at
least ``split_warm_piece_px`` that reach the component's outline (a dirt blotch or
a piece lying wholly on the red metal does not), the ``split_warm_max_rest``
largest of them, together ``split_warm_rest_share`` of the other pixels. The red
region and those regions seed the watershed (two or more pieces).
``split_warm = False`` (the default until its gates pass): not tried.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from vision.kernels_warm import _warm_counts, _warm_seeds

__all__ = ["WarmParams", "warm_labels", "warm_markers"]


class WarmParams(Protocol):
    """The ``SegmentParams`` fields the warm split reads (areas in full-res px)."""

    @property
    def scale(self) -> int: ...

    @property
    def split_chroma_rb(self) -> float: ...

    @property
    def split_chroma_dark(self) -> float: ...

    @property
    def split_chroma_coherence(self) -> float: ...

    @property
    def split_chroma_solidity(self) -> float: ...

    @property
    def split_warm(self) -> bool: ...

    @property
    def split_warm_blue(self) -> float: ...

    @property
    def split_warm_min_px(self) -> float: ...

    @property
    def split_warm_piece_px(self) -> float: ...

    @property
    def split_warm_rest_share(self) -> float: ...

    @property
    def split_warm_max_rest(self) -> int: ...


def warm_labels(
    small: np.ndarray, labels: np.ndarray, stats: np.ndarray, which: np.ndarray, p: WarmParams
) -> set[int]:
    """Label values among ``which`` with at least ``split_warm_min_px`` red-metal
    pixels and ``split_warm_piece_px`` others inside the outline (full-res px;
    ``stats``: cv2 CC_STAT rows per label value; ``_warm_counts``)."""
    if which.size == 0 or not p.split_warm:
        return set()
    which = which.astype(np.int64)
    s2 = float(p.scale * p.scale)
    counts = _warm_counts(
        small, labels, stats, which, float(p.split_chroma_dark), float(p.split_chroma_rb),
        float(p.split_warm_blue), p.split_warm_min_px / s2,
    )  # fmt: skip
    ok = (counts[:, 0] >= p.split_warm_min_px / s2) & (counts[:, 1] >= p.split_warm_piece_px / s2)
    return set(which[ok].tolist())


def warm_markers(
    small: np.ndarray, labels: np.ndarray, lab: int, y: int, x: int, h: int, w: int, p: WarmParams
) -> tuple[np.ndarray, int]:
    """Watershed markers ((h + 2, w + 2) int32, pieces 1..G, G + 1 outside) and their
    count G (1: no cut) of the warm cue for label ``lab`` in its box at column ``x``,
    row ``y`` (``_warm_seeds``)."""
    s2 = float(p.scale * p.scale)
    markers, n = _warm_seeds(
        small, labels, lab, y, x, h, w, float(p.split_chroma_dark), float(p.split_chroma_rb),
        float(p.split_warm_blue), p.split_warm_min_px / s2, p.split_warm_piece_px / s2,
        float(p.split_chroma_coherence), float(p.split_chroma_solidity),
        float(p.split_warm_rest_share), int(p.split_warm_max_rest),
    )  # fmt: skip
    return markers, int(n)
