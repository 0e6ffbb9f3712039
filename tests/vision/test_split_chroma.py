"""The chroma split (``vision.split``, cue 4): a red metal on or against a grey one
is cut between them; a lone red piece, a grey plate with rust blotches and a
green board with gold pads are not. The compiled ``_chroma_counts`` against its
NumPy twin."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.kernels_split import _chroma_counts, _chroma_seeds
from vision.segment import Segmenter, SegmentParams

BELT = 90
BRASS = (76, 142, 188)  # BGR
COPPER = (66, 100, 172)
ALU = (170, 172, 171)
STEEL = (150, 152, 148)  # a bright steel: the belt is 90
RUST = (38, 66, 128)
PCB = (48, 105, 34)
PAD = (120, 170, 200)


def chroma_counts_twin(
    small: np.ndarray, labels: np.ndarray, boxes: np.ndarray, which: np.ndarray,
    dark: float, rb: float, grey: float,
) -> np.ndarray:  # fmt: skip
    """NumPy twin of ``vision.kernels_split._chroma_counts``."""
    out = np.zeros((which.size, 2))
    px = small.astype(np.float64)
    tot = px.sum(axis=2)
    warm = (tot >= dark) & (px[..., 2] - px[..., 0] >= rb * tot)
    grey_px = (tot >= dark) & ~warm & (px.max(axis=2) - px.min(axis=2) <= grey * tot)
    for i, lab in enumerate(which.tolist()):
        x, y, w, h = (int(v) for v in boxes[lab, :4])
        inside = np.zeros(labels.shape, bool)
        inside[y : y + h, x : x + w] = True
        mine = inside & (labels == lab)
        out[i] = warm[mine].sum(), grey_px[mine].sum()
    return out


def _scene(kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((512, 1280, 3), BELT, np.int16)
    if kind in ("plate_on_plate", "plate_on_steel"):  # a brass plate lying on a larger plate
        img[150:330, 500:760] = ALU if kind == "plate_on_plate" else STEEL
        img[200:260, 560:640] = BRASS
    elif kind == "lone":
        img[200:260, 560:640] = BRASS
    elif kind == "rust":  # a steel plate with rust blotches
        img[150:330, 500:760] = STEEL
        for _ in range(25):
            c = (int(rng.integers(500, 760)), int(rng.integers(150, 330)))
            cv2.circle(img, c, int(rng.integers(3, 9)), RUST, -1)
    elif kind == "pcb":  # a green board with gold pads and grey chips
        img[150:330, 500:760] = PCB
        for _ in range(30):
            x, y = int(rng.integers(500, 750)), int(rng.integers(150, 320))
            img[y : y + 6, x : x + 8] = PAD
        for _ in range(6):
            x, y = int(rng.integers(500, 730)), int(rng.integers(150, 300))
            img[y : y + 20, x : x + 26] = (170, 180, 185)
    elif kind == "wire_on_plate":  # a copper wire lying across a stainless plate
        img[150:330, 500:760] = (178, 176, 171)
        cv2.line(img, (520, 170), (740, 300), COPPER, 14)
    img += rng.normal(0, 3, img.shape).astype(np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _areas(image: np.ndarray, chroma: bool) -> list[int]:
    seg = Segmenter(SegmentParams(split_chroma=chroma))
    seg.segment(np.full_like(image, BELT))  # the belt model first
    return sorted(seg.segment(image).area_px.astype(int).tolist())


@pytest.mark.parametrize(
    ("kind", "want"),
    [("plate_on_plate", 2), ("plate_on_steel", 2), ("wire_on_plate", 2), ("lone", 1),
     ("rust", 1), ("pcb", 1)],
)  # fmt: skip
def test_chroma_split(kind: str, want: int) -> None:
    image = _scene(kind)
    got = _areas(image, True)
    assert len(got) == want, got
    assert len(_areas(image, False)) == 1  # off: as before (one segment each)
    assert SegmentParams().split_chroma is True  # on by default since session 14
    if want == 2 and kind != "wire_on_plate":  # the brass plate comes out whole: 80 x 60 px
        assert abs(got[0] - 80 * 60) < 0.05 * 80 * 60, got


def test_chroma_counts_equal_the_numpy_twin() -> None:
    rng = np.random.default_rng(3)
    for trial in range(10):
        small = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
        labels = np.zeros((80, 120), np.int32)
        for k in range(1, 7):
            c = (int(rng.integers(0, 120)), int(rng.integers(0, 80)))
            cv2.ellipse(labels, c, (int(rng.integers(1, 30)), int(rng.integers(1, 20))),
                        float(rng.uniform(0, 180)), 0, 360, k, -1)  # fmt: skip
        boxes = np.zeros((7, 5), np.float64)
        for k in range(1, 7):
            ys, xs = np.nonzero(labels == k)
            if len(ys):
                boxes[k] = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, 0
        which = np.array([k for k in range(1, 7) if boxes[k, 2] > 0 and rng.random() < 0.8])
        dark, rb, grey = float(rng.uniform(0, 300)), float(rng.uniform(0.01, 0.3)), 0.1
        got = _chroma_counts(small, labels, boxes, which.astype(np.int64), dark, rb, grey)
        want = chroma_counts_twin(small, labels, boxes, which, dark, rb, grey)
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")
    empty = _chroma_counts(small, labels, boxes, np.zeros(0, np.int64), 60.0, 0.15, 0.06)
    assert empty.shape == (0, 2)


_K3 = np.ones((3, 3), np.uint8)


def chroma_markers_twin(
    roi: np.ndarray, comp: np.ndarray, p: SegmentParams
) -> tuple[np.ndarray, int]:
    """OpenCV/NumPy twin of ``vision.kernels_split._chroma_seeds``: markers from a
    component's red-metal and grey pixels (the rules of ``_chroma_counts``): each
    class, opened 3x3, must keep ``split_chroma_coherence`` of its pixels in its
    largest 4-connected region, of at least
    ``split_min_piece_px``, and the red region fill ``split_chroma_solidity`` of its
    convex hull; those regions are the markers (1 red, 2 grey; background 3, 1 px
    frame as ``roi``)."""
    none = np.empty((0, 0), np.int32), 1
    h, w = comp.shape
    px = roi[1:-1, 1:-1].astype(np.float32)
    total = px.sum(axis=2)
    lit = comp & (total >= p.split_chroma_dark)
    warm = lit & (px[..., 2] - px[..., 0] >= p.split_chroma_rb * total)
    grey = lit & ~warm & (px.max(axis=2) - px.min(axis=2) <= p.split_chroma_grey * total)
    markers = np.full((h + 2, w + 2), 3, np.int32)
    inner = markers[1:-1, 1:-1]
    inner[comp] = 0
    piece = p.split_min_piece_px / float(p.scale * p.scale)
    for g, mine in ((1, warm), (2, grey)):
        count = int(mine.sum())
        opened = cv2.morphologyEx(mine.view(np.uint8), cv2.MORPH_OPEN, _K3)
        n, lab, st, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
        if n < 2:
            return none
        k = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
        top = int(st[k, cv2.CC_STAT_AREA])
        if top < piece or top < p.split_chroma_coherence * count:
            return none
        region = lab == k
        if g == 1 and _solidity_twin(region) < p.split_chroma_solidity:
            return none  # a ragged red patch: rust or tarnish on one plate, not a piece
        inner[region] = g
    return markers, 2


def _solidity_twin(region: np.ndarray) -> float:
    """Pixels of ``region`` over its convex hull's area (pixel centres' hull plus
    half its perimeter plus 1, as ``vision.merge.solidity``)."""
    contours, _ = cv2.findContours(
        region.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return 0.0
    hull = cv2.convexHull(np.concatenate(contours))
    area = cv2.contourArea(hull) + 0.5 * cv2.arcLength(hull, True) + 1.0
    return float(min(region.sum() / max(area, 1.0), 1.0))


def _seeds(
    small: np.ndarray, labels: np.ndarray, lab: int, p: SegmentParams
) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
    ys, xs = np.nonzero(labels == lab)
    y, x = int(ys.min()), int(xs.min())
    h, w = int(ys.max()) - y + 1, int(xs.max()) - x + 1
    got = _chroma_seeds(
        small, labels, lab, y, x, h, w, p.split_chroma_dark, p.split_chroma_rb,
        p.split_chroma_grey, p.split_min_piece_px / 4.0, p.split_chroma_coherence,
        p.split_chroma_solidity,
    )  # fmt: skip
    roi = cv2.copyMakeBorder(small[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    want = chroma_markers_twin(roi, labels[y : y + h, x : x + w] == lab, p)
    return got, want


def test_chroma_seeds_equal_the_opencv_twin() -> None:
    """The scenes above at the segmentation's scale, and random blobs of red and
    grey patches: the same markers (when both find a cut) and the same count."""
    p = SegmentParams()
    cases = []
    for kind in ("plate_on_plate", "plate_on_steel", "wire_on_plate", "lone", "rust", "pcb"):
        small = cv2.resize(_scene(kind), (640, 256), interpolation=cv2.INTER_AREA)
        labels = np.zeros((256, 640), np.int32)
        labels[60:180, 230:400] = 1  # the box of every scene's plate
        labels[(np.abs(small.astype(int) - BELT).sum(axis=2) < 24)] = 0
        cases.append((small, labels))
    rng = np.random.default_rng(5)
    for _ in range(30):
        small = np.full((90, 120, 3), BELT, np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            colour = [BRASS, COPPER, ALU, STEEL, RUST, PCB][int(rng.integers(6))]
            c = (int(rng.integers(0, 120)), int(rng.integers(0, 90)))
            ax = (int(rng.integers(3, 40)), int(rng.integers(3, 30)))
            cv2.ellipse(small, c, ax, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        noise = rng.normal(0, 3, small.shape)
        small = np.clip(small + noise, 0, 255).astype(np.uint8)
        labels = (np.abs(small.astype(int) - BELT).sum(axis=2) >= 24).astype(np.int32)
        cases.append((small, labels))
    cuts = 0
    for small, labels in cases:
        if not labels.any():
            continue
        (gm, gn), (wm, wn) = _seeds(small, labels, 1, p)
        assert gn == wn
        if gn == 2:
            cuts += 1
            np.testing.assert_array_equal(gm, wm)
    assert cuts >= 4  # the cut and the refusals both seen


def test_the_vision_key_turns_the_chroma_cue_off(tmp_path: Path) -> None:
    """``[vision] split_chroma`` reaches the classic segmenter's params; the default
    line has the cue (since session 14); a wrong type is refused naming the key."""
    from core.errors import InputFileError
    from sortline.config import load_config

    assert load_config().vision.segment_params().split_chroma is True
    p = tmp_path / "line.toml"
    p.write_text("[vision]\nsplit_chroma = false\n")
    assert load_config(p).vision.segment_params().split_chroma is False
    p.write_text("[vision]\nsplit_chroma = 2\n")
    with pytest.raises(InputFileError, match=r"vision\.split_chroma"):
        load_config(p)
