"""The warm split (``vision.split_warm``, cue 5 of ``vision.split``): a red metal
lying on a green board, a black or a blue plastic is cut from it (the chroma
cue, red against grey, is not); a lone copper plate with dirt blotches, a rusty
steel plate, a board with gold pads, a red battery wrap with a white band and
a blue one with a yellow band (as red as brass, but a paint) are not. The
compiled ``_warm_counts`` and ``_warm_seeds`` against their NumPy and OpenCV
twins."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.vision.test_split_chroma import _solidity_twin
from vision.kernels_warm import _warm_counts, _warm_seeds
from vision.segment import Segmenter, SegmentParams

BELT = 90
BRASS = (76, 142, 188)  # BGR
COPPER = (66, 100, 172)
STEEL = (150, 152, 148)
RUST = (38, 66, 128)
PCB = (48, 105, 34)
PAD = (120, 170, 200)
BLACK = (16, 16, 18)  # a black plastic, too dark for a colour
BLUE = (200, 90, 30)
DIRT = (62, 70, 78)
WRAP = (40, 40, 200)  # a red battery wrap
WHITE = (225, 225, 225)
YELLOW = (40, 180, 210)  # a battery wrap's yellow: as red as brass, B far under 0.26 R


def _scene(kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((512, 1280, 3), BELT, np.int16)
    if kind in ("brass_on_pcb", "copper_on_black", "copper_on_blue"):  # a plate on a slab
        under = {"brass_on_pcb": PCB, "copper_on_black": BLACK, "copper_on_blue": BLUE}[kind]
        img[150:330, 500:760] = under
        img[200:260, 560:640] = BRASS if kind == "brass_on_pcb" else COPPER
    elif kind == "wire_on_pcb":  # a copper wire lying on a board, inside its outline
        img[150:330, 500:760] = PCB
        cv2.line(img, (530, 180), (720, 290), COPPER, 16)
    elif kind == "dirty_copper":  # one copper plate with dirt blotches inside it
        img[150:330, 500:760] = COPPER
        for _ in range(6):
            c = (int(rng.integers(540, 720)), int(rng.integers(190, 290)))
            cv2.circle(img, c, int(rng.integers(8, 16)), DIRT, -1)
    elif kind == "lone":
        img[150:330, 500:760] = COPPER
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
    elif kind == "battery":  # a red wrap with a white band across it, grey caps
        img[200:280, 460:800] = WRAP
        img[200:280, 560:660] = WHITE
        img[200:280, 460:470] = (190, 192, 195)
    elif kind == "yellow_band":  # a blue wrap with a yellow band (a paint, not brass)
        img[200:280, 460:800] = (160, 70, 30)
        img[200:280, 560:660] = YELLOW
    img += rng.normal(0, 3, img.shape).astype(np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def _areas(image: np.ndarray, warm: bool) -> list[int]:
    seg = Segmenter(SegmentParams(split_warm=warm))
    seg.segment(np.full_like(image, BELT))  # the belt model first
    return sorted(seg.segment(image).area_px.astype(int).tolist())


@pytest.mark.parametrize(
    ("kind", "want"),
    [("brass_on_pcb", 2), ("copper_on_black", 2), ("copper_on_blue", 2), ("wire_on_pcb", 2),
     ("dirty_copper", 1), ("lone", 1), ("rust", 1), ("pcb", 1), ("battery", 1),
     ("yellow_band", 1)],
)  # fmt: skip
def test_warm_split(kind: str, want: int) -> None:
    image = _scene(kind)
    got = _areas(image, True)
    assert len(got) == want, got
    assert len(_areas(image, False)) == 1  # off (the default): one segment each
    if kind in ("brass_on_pcb", "copper_on_black", "copper_on_blue"):  # the plate: 80 x 60 px
        assert abs(got[0] - 80 * 60) < 0.05 * 80 * 60, got


def warm_counts_twin(
    small: np.ndarray, labels: np.ndarray, boxes: np.ndarray, which: np.ndarray,
    dark: float, rb: float, blue: float, min_red: float,
) -> np.ndarray:  # fmt: skip
    """NumPy twin of ``vision.kernels_warm._warm_counts``."""
    out = np.zeros((which.size, 2))
    px = small.astype(np.float64)
    tot = px.sum(axis=2)
    red = (tot >= dark) & (px[..., 2] - px[..., 0] >= rb * tot) & (px[..., 0] >= blue * px[..., 2])
    for i, lab in enumerate(which.tolist()):
        x, y, w, h = (int(v) for v in boxes[lab, :4])
        inside = np.zeros(labels.shape, bool)
        inside[y : y + h, x : x + w] = True
        mine = inside & (labels == lab)
        inner = np.zeros_like(mine)  # all four neighbours of the label, not on the image's edge
        core = mine[1:-1, 1:-1] & (labels[:-2, 1:-1] == lab) & (labels[2:, 1:-1] == lab)
        inner[1:-1, 1:-1] = core & (labels[1:-1, :-2] == lab) & (labels[1:-1, 2:] == lab)
        n_red = red[mine].sum()
        out[i] = n_red, (inner & ~red).sum() if n_red >= min_red else 0
    return out


def _random_labels(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    small = rng.integers(0, 256, (80, 120, 3), dtype=np.uint8)
    labels = np.zeros((80, 120), np.int32)
    for k in range(1, 7):
        c = (int(rng.integers(0, 120)), int(rng.integers(0, 80)))
        cv2.ellipse(labels, c, (int(rng.integers(1, 30)), int(rng.integers(1, 20))),
                    float(rng.uniform(0, 180)), 0, 360, k, -1)  # fmt: skip
    return small, labels


def test_warm_counts_equal_the_numpy_twin() -> None:
    rng = np.random.default_rng(3)
    for trial in range(10):
        small, labels = _random_labels(rng)
        boxes = np.zeros((7, 5), np.float64)
        for k in range(1, 7):
            ys, xs = np.nonzero(labels == k)
            if len(ys):
                boxes[k] = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1, 0
        which = np.array([k for k in range(1, 7) if boxes[k, 2] > 0 and rng.random() < 0.8])
        dark, rb = float(rng.uniform(0, 300)), float(rng.uniform(0.01, 0.3))
        blue, min_red = float(rng.uniform(0, 0.5)), float(rng.uniform(0, 60))
        got = _warm_counts(small, labels, boxes, which.astype(np.int64), dark, rb, blue, min_red)
        want = warm_counts_twin(small, labels, boxes, which, dark, rb, blue, min_red)
        np.testing.assert_array_equal(got, want, err_msg=f"trial {trial}")
    none = np.zeros(0, np.int64)
    assert _warm_counts(small, labels, boxes, none, 60.0, 0.15, 0.26, 25.0).shape == (0, 2)


_K3 = np.ones((3, 3), np.uint8)
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)


def warm_markers_twin(
    roi: np.ndarray, comp: np.ndarray, p: SegmentParams
) -> tuple[np.ndarray, int]:
    """OpenCV/NumPy twin of ``vision.kernels_warm._warm_seeds``: the red-metal
    pixels, opened 3x3, keep ``split_chroma_coherence`` of them in their largest
    4-connected region, of at least ``split_warm_min_px``, solid; the other pixels,
    opened 3x3, give the ``split_warm_max_rest`` largest regions of at least
    ``split_warm_piece_px`` that touch the outline, together ``split_warm_rest_share``
    of them. Markers 1 (red), 2.. (the rest's regions), background G + 1."""
    none = np.empty((0, 0), np.int32), 1
    h, w = comp.shape
    px = roi[1:-1, 1:-1].astype(np.float64)
    total = px.sum(axis=2)
    lit = comp & (total >= p.split_chroma_dark) & (px[..., 0] >= p.split_warm_blue * px[..., 2])
    red = lit & (px[..., 2] - px[..., 0] >= p.split_chroma_rb * total)
    rest = comp & ~red
    min_red, piece = p.split_warm_min_px / 4.0, p.split_warm_piece_px / 4.0
    if red.sum() < min_red or rest.sum() < piece:
        return none
    opened = cv2.morphologyEx(red.view(np.uint8), cv2.MORPH_OPEN, _K3)
    n, lab, st, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    if n < 2:
        return none
    k = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
    top = int(st[k, cv2.CC_STAT_AREA])
    if top < min_red or top < p.split_chroma_coherence * red.sum():
        return none
    red_region = lab == k
    if _solidity_twin(red_region) < p.split_chroma_solidity:
        return none
    opened = cv2.morphologyEx(rest.view(np.uint8), cv2.MORPH_OPEN, _K3)
    n, lab, st, _ = cv2.connectedComponentsWithStats(opened, connectivity=4)
    outside = np.pad(~comp, 1, constant_values=True)
    ok = []
    for j in range(1, n):
        region = np.pad(lab == j, 1)
        touches = (cv2.dilate(region.view(np.uint8), _CROSS) > 0) & outside
        if st[j, cv2.CC_STAT_AREA] >= piece and touches.any():
            ok.append(j)
    ok.sort(key=lambda j: -st[j, cv2.CC_STAT_AREA])  # stable: raster order among equals
    keep = ok[: p.split_warm_max_rest]
    if (
        not keep
        or sum(st[j, cv2.CC_STAT_AREA] for j in keep) < p.split_warm_rest_share * rest.sum()
    ):
        return none
    markers = np.full((h + 2, w + 2), 2 + len(keep), np.int32)
    inner = markers[1:-1, 1:-1]
    inner[comp] = 0
    inner[red_region] = 1
    for g, j in enumerate(keep):
        inner[lab == j] = 2 + g
    return markers, 1 + len(keep)


def _seeds(
    small: np.ndarray, labels: np.ndarray, lab: int, p: SegmentParams
) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
    ys, xs = np.nonzero(labels == lab)
    y, x = int(ys.min()), int(xs.min())
    h, w = int(ys.max()) - y + 1, int(xs.max()) - x + 1
    got = _warm_seeds(
        small, labels, lab, y, x, h, w, p.split_chroma_dark, p.split_chroma_rb,
        p.split_warm_blue, p.split_warm_min_px / 4.0, p.split_warm_piece_px / 4.0,
        p.split_chroma_coherence, p.split_chroma_solidity, p.split_warm_rest_share,
        p.split_warm_max_rest,
    )  # fmt: skip
    roi = cv2.copyMakeBorder(small[y : y + h, x : x + w], 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    want = warm_markers_twin(roi, labels[y : y + h, x : x + w] == lab, p)
    return got, want


def _check_seeds(cases: list[tuple[np.ndarray, np.ndarray]]) -> tuple[int, int]:
    """Cuts and refusals of label 1 of each case; the kernel's and the twin's
    markers equal where they cut, their counts always."""
    p = SegmentParams(split_warm=True)
    cuts = refused = 0
    for small, labels in cases:
        if not labels.any():
            continue
        (gm, gn), (wm, wn) = _seeds(small, labels, 1, p)
        assert gn == wn
        if gn >= 2:
            cuts += 1
            np.testing.assert_array_equal(gm, wm)
        else:
            refused += 1
    return cuts, refused


def test_warm_seeds_equal_the_opencv_twin_on_the_scenes() -> None:
    """The scenes above at the segmentation's scale: the plates and the wire cut,
    the others refused, as the twin."""
    cases = []
    for kind in ("brass_on_pcb", "copper_on_black", "wire_on_pcb", "dirty_copper", "lone",
                 "rust", "pcb", "battery", "yellow_band"):  # fmt: skip
        small = cv2.resize(_scene(kind), (640, 256), interpolation=cv2.INTER_AREA)
        labels = (np.abs(small.astype(int) - BELT).sum(axis=2) >= 24).astype(np.int32)
        cases.append((small, labels))
    assert _check_seeds(cases) == (3, 6)


def test_warm_seeds_equal_the_opencv_twin() -> None:
    """Random heaps of red, grey, green, black and blue patches: the same markers
    (when both find a cut) and the same count."""
    rng = np.random.default_rng(5)
    colours = [BRASS, COPPER, STEEL, RUST, PCB, BLACK, BLUE, YELLOW]
    cases = []
    for _ in range(40):
        small = np.full((90, 120, 3), BELT, np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            colour = colours[int(rng.integers(len(colours)))]
            c = (int(rng.integers(0, 120)), int(rng.integers(0, 90)))
            ax = (int(rng.integers(3, 40)), int(rng.integers(3, 30)))
            cv2.ellipse(small, c, ax, float(rng.uniform(0, 180)), 0, 360, colour, -1)
        noise = rng.normal(0, 3, small.shape)
        small = np.clip(small + noise, 0, 255).astype(np.uint8)
        labels = (np.abs(small.astype(int) - BELT).sum(axis=2) >= 24).astype(np.int32)
        cases.append((small, labels))
    cuts, refused = _check_seeds(cases)
    assert cuts >= 4 and refused >= 4  # the cut and the refusals both seen


def test_the_vision_key_turns_the_warm_cue_on(tmp_path: Path) -> None:
    """``[vision] split_warm`` reaches the classic segmenter's params; the default
    line has it off; a wrong type is refused naming the key."""
    from core.errors import InputFileError
    from sortline.config import load_config

    assert load_config().vision.segment_params().split_warm is False
    assert SegmentParams().split_warm is False
    p = tmp_path / "line.toml"
    p.write_text("[vision]\nsplit_warm = true\n")
    assert load_config(p).vision.segment_params().split_warm is True
    p.write_text("[vision]\nsplit_warm = 2\n")
    with pytest.raises(InputFileError, match=r"vision\.split_warm"):
        load_config(p)
