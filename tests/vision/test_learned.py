"""The learned instance cue (``vision.learned``): its targets, its post-processing
on hand-built core maps, the shipped ONNX file and the refusal of bad files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from core.errors import InputFileError
from models.seg_dataset import SegSet, material_from_labels, targets_from_labels
from models.seg_models import resolve_seg_model
from vision.learned import (
    InstanceCue,
    candidates,
    core_map,
    core_map_window,
    net_input,
    pack_rois,
    roi_boxes,
    split_learned,
)
from vision.segment import Segmenter, SegmentParams

SHIPPED = resolve_seg_model("builtin:seg-v1")
BELT = 95


def _discs(centres: list[tuple[int, int]], r: int, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) int32 label image: disc k (k = 1..) of radius r at (col, row); later on top."""
    lab = np.zeros(shape, np.int32)
    for k, (c, rr) in enumerate(centres, 1):
        cv2.circle(lab, (c, rr), r, k, -1)
    return lab


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    _, lab, stats, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return lab.astype(np.int32), stats.astype(np.float64), cents


def test_targets_two_touching_squares() -> None:
    lab = np.full((20, 30), -1, np.int64)
    lab[5:15, 5:15] = 7
    lab[5:15, 15:25] = 9
    core, contact = targets_from_labels(lab)
    assert core[lab < 0].max() == 0
    assert core[10, 10] == 255 and core[10, 20] == 255  # each square's centre
    assert core[10, 14] < 80 and core[10, 15] < 80  # the shared edge is no core
    touching = np.zeros_like(contact, bool)
    touching[5:15, 14:16] = True
    assert (contact > 0).tolist() == touching.tolist()


P = SegmentParams()


@pytest.mark.parametrize(
    ("core_centres", "want_pieces"),
    [
        ([(40, 40), (62, 40)], 2),  # two cores: two pieces
        ([(51, 40)], 1),  # one core: whole
        ([(40, 40), (62, 40), (51, 60)], 2),  # a third seed too small to count (see below)
        ([], 1),  # no core at all: whole
    ],
)
def test_split_learned_hand_built_cores(
    core_centres: list[tuple[int, int]], want_pieces: int
) -> None:
    mask = _discs([(40, 40), (62, 40)], 12, (100, 110)) > 0
    labels, stats, cents = _components(mask)
    core = np.zeros(mask.shape, np.float32)
    for k, (c, r) in enumerate(core_centres):
        radius = 5 if k < 2 else 1  # 1 px radius: 5 low-res px < learned_min_seed_px / 4
        cv2.circle(core, (c, r), radius, 0.9, -1)
    stats, cents = split_learned(np.full((*mask.shape, 3), 150, np.uint8), labels, stats, cents,
                                 core, P)  # fmt: skip
    pieces = np.unique(labels[mask])
    assert pieces.size == want_pieces
    assert stats.shape == (labels.max() + 1, 5) and cents.shape == (labels.max() + 1, 2)
    for v in pieces:  # stats and centroids describe the written label image
        rows, cols = np.nonzero(labels == v)
        assert stats[v, cv2.CC_STAT_AREA] == rows.size
        assert cents[v] == pytest.approx([cols.mean(), rows.mean()])
    if want_pieces == 2:  # the cut falls between the discs' centres
        assert labels[40, 35] != labels[40, 67]


def test_split_learned_leaves_small_components_alone() -> None:
    """Components below ``split_min_area_px`` are never split, whatever the cue says."""
    mask = _discs([(20, 20), (27, 20)], 4, (40, 50)) > 0
    labels, stats, cents = _components(mask)
    core = np.zeros(mask.shape, np.float32)
    core[20, 18:20] = core[20, 28:30] = 1.0
    before = labels.copy()
    split_learned(np.zeros((*mask.shape, 3), np.uint8), labels, stats, cents, core, P)
    assert (labels == before).all()


def test_net_input_layout() -> None:
    small = np.full((3, 5, 3), 100, np.uint8)
    belt = np.full((3, 5, 3), 36, np.uint8)
    fg = np.zeros((3, 5), np.uint8)
    fg[1, 2] = 255
    x = net_input(small, belt, fg)
    assert x.shape == (4, 3, 5) and x.dtype == np.float32
    assert x[:3].tolist() == np.ones((3, 3, 5)).tolist()
    assert x[3].sum() == 1.0 and x[3, 1, 2] == 1.0


def test_shipped_model_shapes() -> None:
    cue = InstanceCue.load(SHIPPED)
    (inp,), (out,) = cue.session.get_inputs(), cue.session.get_outputs()
    assert inp.shape[:2] == [1, 4] and out.shape[:2] == [1, 2]
    for h, w in ((64, 96), (37, 51)):  # odd sizes are padded for the stride-2 layer
        core, contact = cue.predict(
            np.full((h, w, 3), 120, np.uint8), np.full((h, w, 3), 95, np.uint8),
            np.zeros((h, w), np.uint8),
        )  # fmt: skip
        assert core.shape == contact.shape == (h, w)
        assert core.dtype == np.float32 and core.min() >= 0.0 and core.max() <= 1.0


def _scene(kind: str, seed: int = 0) -> np.ndarray:
    """Full-resolution 512 x 1280 frame: two touching discs of different colour, or
    one textured disc of the same size as the pair's union."""
    rng = np.random.default_rng(seed)
    img = np.full((512, 1280, 3), BELT, np.float32)
    if kind == "pair":
        cv2.circle(img, (600, 250), 34, (40, 110, 200), -1)  # copper
        cv2.circle(img, (664, 250), 34, (200, 200, 205), -1)  # aluminium, touching
    else:
        disc = np.zeros((512, 1280), np.uint8)
        cv2.ellipse(disc, ((632, 250), (120, 80), 0.0), 255, -1)
        texture = cv2.GaussianBlur(rng.normal(0, 25, (512, 1280)).astype(np.float32), (0, 0), 3)
        img[disc > 0] = np.array([60, 140, 60], np.float32) + texture[disc > 0, None]
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.mark.parametrize(("kind", "want"), [("pair", 2), ("textured", 1)])
def test_learned_segmenter_on_hand_built_scenes(kind: str, want: int) -> None:
    seg = Segmenter(SegmentParams(segmenter="learned", learned_model=str(SHIPPED)))
    seg.segment(np.full((512, 1280, 3), BELT, np.uint8))  # the belt model first
    assert len(seg.segment(_scene(kind))) == want


def _onnx_file(path: Path, in_ch: int, out_ch: int, kind: str | None) -> Path:
    """A tiny real ONNX model (a 1x1 convolution) with ``in_ch`` inputs and ``out_ch``
    outputs and, unless None, metadata ``sortline.kind``."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [out_ch, in_ch, 1, 1], [0.1] * out_ch * in_ch)
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_ch, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, out_ch, "h", "w"])],
        initializer=[w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if kind is not None:
        helper.set_model_props(model, {"sortline.kind": kind})
    onnx.save(model, str(path))
    return path


def test_tiny_good_file_loads(tmp_path: Path) -> None:
    cue = InstanceCue.load(_onnx_file(tmp_path / "ok.onnx", 4, 2, "instance-cue"))
    core, _ = cue.predict(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8),
                          np.zeros((8, 8), np.uint8))  # fmt: skip
    assert core.shape == (8, 8)


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.onnx", "not found"),
        (lambda d: _bytes(d / "junk.onnx", b"not a model"), "not a loadable ONNX model"),
        (lambda d: _onnx_file(d / "nokind.onnx", 4, 2, None), "not an instance-cue model"),
        (lambda d: _onnx_file(d / "cls.onnx", 4, 2, "classifier"), "not an instance-cue model"),
        (lambda d: _onnx_file(d / "in3.onnx", 3, 2, "instance-cue"), "input must be (1, 4, h, w)"),
        (lambda d: _onnx_file(d / "out1.onnx", 4, 1, "instance-cue"), "output must be (1, 2"),
    ],
)
def test_bad_model_refused_in_one_line(tmp_path: Path, make: object, says: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(InputFileError) as err:
        Segmenter(SegmentParams(segmenter="learned", learned_model=str(path)))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and says in msg


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_unknown_segmenter_refused() -> None:
    with pytest.raises(ValueError, match="segmenter"):
        Segmenter(SegmentParams(segmenter="magic"))


def test_config_learned_segmenter() -> None:
    from sortline.config import load_config

    cfg = load_config(None)
    assert cfg.vision.segment_params().segmenter == "classic"
    vis = cfg.vision.model_copy(update={"segmenter": "learned"})
    p = vis.segment_params(cfg.resolve_path)
    assert p.segmenter == "learned" and Path(p.learned_model) == SHIPPED and SHIPPED.is_file()
    bad = cfg.vision.model_copy(update={"segmenter": "learned", "segmenter_model": "builtin:nope"})
    with pytest.raises(InputFileError, match="builtin:nope"):
        bad.segment_params(cfg.resolve_path)


def _pair_frame() -> tuple[InstanceCue, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cue = InstanceCue.load(SHIPPED)
    seg = Segmenter(SegmentParams(segmenter="learned", learned_model=str(SHIPPED)))
    seg.segment(np.full((512, 1280, 3), BELT, np.uint8))
    small = seg.downsample(_scene("pair"))
    fg = seg.mask(small)
    labels, stats, _ = _components(fg > 0)
    return cue, small, seg.belt.mean_u8, fg, labels, stats


def test_core_map_window_matches_the_whole_frame() -> None:
    """The slow twin: the cue read in the window around the large components (even
    offsets, 32 px of context) gives their pixels nearly what the whole frame gives;
    0 elsewhere."""
    cue, small, belt, fg, labels, stats = _pair_frame()
    core = core_map_window(cue, small, belt, fg, stats, P)
    whole, _ = cue.predict(small, belt, fg)
    on = labels > 0
    assert np.abs(core[on] - whole[on]).max() < 0.05
    far = np.zeros_like(on)
    far[:, :200] = True  # more than 32 px left of the pair (columns 283-349 low-res)
    assert core[far].max() == 0.0


@pytest.mark.parametrize(
    ("margin_px", "border_px", "tol"), [(2, 16, 0.02), (8, 16, 0.01), (2, 0, 0.2)]
)
def test_core_map_rois_match_the_whole_frame(margin_px: int, border_px: int, tol: float) -> None:
    """Read in its packed box, a component's core is what the whole frame gives, up
    to the belt context the box lacks (``margin_px`` + ``border_px``); the core map
    is 0 outside the components' boxes, and seeds the same split."""
    cue, small, belt, fg, labels, stats = _pair_frame()
    core = core_map(cue, small, belt, fg, stats, P, margin_px=margin_px, border_px=border_px)
    whole, _ = cue.predict(small, belt, fg)
    on = labels > 0
    assert np.abs(core[on] - whole[on]).max() < tol
    x, y, w, h = (int(v) for v in stats[1, :4])
    box = np.zeros_like(on)
    box[y : y + h, x : x + w] = True
    assert core[~box].max() == 0.0
    pieces = []
    for c in (core, whole):
        lab = labels.copy()
        split_learned(small, lab, stats.copy(), np.zeros((len(stats), 2)), c, P)
        pieces.append(np.unique(lab[on]).size)
    assert pieces == [2, 2]


def test_core_map_reads_only_large_components() -> None:
    """Only components of at least ``split_min_area_px`` are read; none: all zeros."""
    cue, small, belt, fg, _, stats = _pair_frame()
    assert candidates(stats, P).tolist() == [1]
    small_only = dataclasses.replace(P, split_min_area_px=float(stats[1, 4] * 4 + 4))
    assert candidates(stats, small_only).size == 0
    assert not core_map(cue, small, belt, fg, stats, small_only).any()


@pytest.mark.parametrize(
    ("stats_row", "margin", "want"),
    [
        ((10, 20, 5, 6), 2, (18, 8, 28, 17)),  # odd left edge: rounded down to even
        ((1, 1, 4, 4), 4, (0, 0, 9, 9)),  # clipped at the frame's top left
        ((95, 45, 5, 5), 4, (40, 90, 50, 100)),  # ... and bottom right (50 x 100 frame)
        ((0, 0, 100, 50), 0, (0, 0, 50, 100)),  # the whole frame
    ],
)
def test_roi_boxes(
    stats_row: tuple[int, int, int, int], margin: int, want: tuple[int, int, int, int]
) -> None:
    st = np.array([[*stats_row, 1]], np.float64)
    got = roi_boxes(st, margin, 50, 100)
    assert got.tolist() == [list(want)]


@pytest.mark.parametrize(
    ("sizes", "width", "gap", "border"),
    [
        ([], 64, 2, 0),
        ([(10, 10)], 64, 2, 0),
        ([(10, 10)], 4, 2, 3),  # a box wider than the asked width widens the atlas
        ([(9, 31), (20, 7), (20, 20), (3, 3), (15, 40), (7, 9)], 48, 2, 0),
        ([(9, 31), (20, 7), (20, 20), (3, 3), (15, 40), (7, 9)], 48, 4, 8),
        ([(s % 13 + 2, (7 * s) % 29 + 2) for s in range(60)], 100, 2, 2),
    ],
)
def test_pack_rois_places_boxes_apart(
    sizes: list[tuple[int, int]], width: int, gap: int, border: int
) -> None:
    """Every box inside the atlas and its border, offsets even, boxes at least ``gap``
    apart, the atlas's sides even; and never much larger than the boxes need."""
    sz = np.array(sizes, np.int64).reshape(-1, 2)
    at, at_h, at_w = pack_rois(sz, width, gap, border)
    assert at.shape == sz.shape and at_h % 2 == 0 and at_w % 2 == 0
    if not sizes:
        assert (at_h, at_w) == (0, 0)
        return
    assert (at % 2 == 0).all() and (at >= border).all()
    assert (at + sz <= [at_h - border, at_w - border]).all()
    grid = np.zeros((at_h + gap, at_w + gap), np.int64)
    for (y, x), (h, w) in zip(at.tolist(), sz.tolist(), strict=True):
        grid[y : y + h + gap, x : x + w + gap] += 1  # each box with a gap below and right
    assert grid.max() == 1
    b = border + border % 2  # the border is even too
    assert at_w <= max(width, int(sz[:, 1].max())) + 2 * b + 1
    assert at_h * at_w <= 2.5 * np.prod(sz + gap, axis=1).sum() + (2 * b + 2) * (at_h + at_w)


def test_split_learned_equals_the_whole_frame_reference() -> None:
    """Seeds found box by box split exactly as seeds found over the whole frame (the
    first shipped version, kept here as the slow twin) on virtual-plant frames."""
    from bench.vision import _study_scenario
    from calibration.geometry import LineGeometry
    from sim.plant.plant import IdlePlc, VirtualPlant

    plant = VirtualPlant(LineGeometry(), _study_scenario("shred", 500.0), IdlePlc(), seed=4001)
    seg = Segmenter(SegmentParams(segmenter="learned", learned_model=str(SHIPPED)))
    split_any = 0
    for i in range(24):
        image = plant.step().image
        if i < 20:
            seg.segment(image)
            continue
        small = seg.downsample(image)
        fg = seg.mask(small)
        n, lab, stats, cents = cv2.connectedComponentsWithStats(fg, connectivity=8)
        lab, stats = lab.astype(np.int32), stats.astype(np.float64)
        assert seg.cue is not None
        core = core_map(seg.cue, small, seg.belt.mean_u8, fg, stats, P)
        got_lab, want_lab = lab.copy(), lab.copy()
        got = split_learned(small, got_lab, stats.copy(), cents.copy(), core, P)
        want = _split_whole_frame(small, want_lab, stats.copy(), cents.copy(), core, P)
        assert (got_lab == want_lab).all()
        assert np.array_equal(got[0], want[0]) and np.allclose(got[1], want[1])
        split_any += int(got[0].shape[0] > n)
    assert split_any > 0  # the frames hold merges the cue splits


def _split_whole_frame(
    small: np.ndarray,
    labels: np.ndarray,
    stats: np.ndarray,
    centroids: np.ndarray,
    core: np.ndarray,
    p: SegmentParams,
) -> tuple[np.ndarray, np.ndarray]:
    """``split_learned`` as first shipped: seed regions found over the whole frame."""
    from vision.kernels_split import _fill_ridges, _write_pieces

    n, s2 = stats.shape[0], float(p.scale * p.scale)
    is_big = stats[:, cv2.CC_STAT_AREA] >= p.split_min_area_px / s2
    is_big[0] = False
    seeds = ((core >= p.learned_core) & is_big[labels]).view(np.uint8)
    n_m, mk, mst, _ = cv2.connectedComponentsWithStats(seeds, connectivity=4, ltype=cv2.CV_32S)
    on = seeds.view(bool)
    comp_of = np.zeros(n_m, np.int64)
    comp_of[mk[on]] = labels[on]
    ok = mst[:, cv2.CC_STAT_AREA] >= p.learned_min_seed_px / s2
    ok[0] = False
    multi = np.flatnonzero(np.bincount(comp_of[ok], minlength=n) >= 2)
    rows, cents = [stats], [np.asarray(centroids, np.float64)]
    dist = np.zeros(labels.shape, np.float32)
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
        st, ce = np.zeros((g_n, 5)), np.zeros((g_n, 2))
        _write_pieces(labels, markers, lab, y, x, ids, st, ce, dist, np.zeros(g_n, np.float32))
        rows[0][lab], cents[0][lab] = st[0], ce[0]
        rows.append(st[1:])
        cents.append(ce[1:])
        next_label += g_n - 1
    return np.vstack(rows), np.vstack(cents)


def test_render_run_gives_aligned_samples() -> None:
    from models.seg_dataset import SegRun
    from sortline.seg_render import render_run

    data = render_run(SegRun("crowded", 0.0, 2.5, 1001), samples=2, every=2, warm=10)
    assert len(data) == 2 and data.small.shape == (2, 256, 640, 3)
    assert data.belt.shape == data.small.shape and data.fg.shape == data.core.shape == (2, 256, 640)
    frag = data.core > 0
    assert frag.any() and (data.contact[~frag] == 0).all()  # contact only on fragments
    assert (data.fg[frag] > 0).mean() > 0.8  # the line's mask covers the truth's fragments


def two_piece_set(
    size: int, rows: tuple[int, int], cols: tuple[int, int, int], classes: np.ndarray | None = None
) -> tuple[np.ndarray, SegSet]:
    """A hand-built size x size frame on the belt: a blue piece (label 1) over
    ``cols[0]:cols[1]`` and a grey one (label 2) over ``cols[1]:cols[2]``, both over
    ``rows``; and its training set (with material targets when ``classes``, the
    class of labels 1 and 2, is given)."""
    lab = np.full((size, size), -1, np.int64)
    lab[rows[0] : rows[1], cols[0] : cols[1]] = 1
    lab[rows[0] : rows[1], cols[1] : cols[2]] = 2
    core, contact = targets_from_labels(lab)
    mat = None if classes is None else material_from_labels(lab, np.array([1, 2]), classes)[None]
    small = np.full((size, size, 3), BELT, np.uint8)
    small[lab == 1], small[lab == 2] = (40, 110, 200), (200, 200, 205)
    data = SegSet(small=small[None], belt=np.full_like(small, BELT)[None],
                  fg=np.where(lab >= 0, 255, 0).astype(np.uint8)[None], core=core[None],
                  contact=contact[None], runs=("hand-built",), material=mat)  # fmt: skip
    return small, data


def test_train_and_export_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from models.seg_train import SegTrainConfig, export_seg_onnx, train_seg

    small, data = two_piece_set(128, (40, 80), (30, 64, 98))
    net, summary = train_seg(data, data, SegTrainConfig(steps=4, batch=2, n_classes=0))
    assert len(summary["history"]) == 4 and summary["best_val_loss"] > 0
    path = tmp_path / "cue.onnx"
    assert export_seg_onnx(net, path, {"sortline.kind": "instance-cue"}, data) < 1e-4
    got, _ = InstanceCue.load(path).predict(small, np.full_like(small, BELT), data.fg[0])
    assert got.shape == (128, 128)


def test_core_map_reuses_the_last_frames_core_of_an_unchanged_component() -> None:
    """A component whose mask matches one of the last frame's (here: the same pair,
    moved 16 rows as the belt moves it) takes that component's core, not a new
    reading; a changed component (a third disc touching the pair) is read again."""
    cue, small, belt, fg, labels, stats = _pair_frame()
    first = core_map(cue, small, belt, fg, stats, P)
    assert len(cue.memory.cores) == 1
    cue.memory.cores[0][:] = 0.77  # a value the net never gives a whole box
    m_small, m_belt, m_fg = (np.roll(a, 16, axis=0) for a in (small, belt, fg))
    lab2, st2, _ = _components(m_fg > 0)
    again = core_map(cue, m_small, m_belt, m_fg, st2, P)
    x, y, w, h = (int(v) for v in st2[1, :4])
    assert (again[y : y + h, x : x + w] == np.float32(0.77)).all()
    fresh = core_map(cue, m_small, m_belt, m_fg, st2, P, reuse_iou=None)
    assert not (fresh[lab2 > 0] == np.float32(0.77)).any()
    g_small, g_fg = m_small.copy(), m_fg.copy()
    cv2.circle(g_small, (316, 150), 14, (200, 60, 60), -1)
    cv2.circle(g_fg, (316, 150), 14, 255, -1)
    lab3, st3, _ = _components(g_fg > 0)
    assert len(st3) == 2  # one component: the pair and the third disc
    third = core_map(cue, g_small, m_belt, g_fg, st3, P)
    assert not (third[lab3 > 0] == np.float32(0.77)).any()
    assert np.abs(first[labels > 0].max() - third[lab3 > 0].max()) < 0.2


@pytest.mark.parametrize(
    ("a_shape", "shape"), [((4, 6), (4, 6)), ((3, 5), (7, 9)), ((8, 9), (4, 5)), ((2, 9), (6, 3))]
)
def test_centred(a_shape: tuple[int, int], shape: tuple[int, int]) -> None:
    from vision.learned import _centred

    a = np.arange(1, a_shape[0] * a_shape[1] + 1, dtype=np.float32).reshape(a_shape)
    got = _centred(a, shape)
    assert got.shape == shape and got.dtype == a.dtype
    dy, dx = (shape[0] - a_shape[0]) // 2, (shape[1] - a_shape[1]) // 2
    for r in range(shape[0]):  # the slow twin: pixel by pixel
        for c in range(shape[1]):
            ar, ac = r - dy, c - dx
            inside = 0 <= ar < a_shape[0] and 0 <= ac < a_shape[1]
            assert got[r, c] == (a[ar, ac] if inside else 0.0)


def test_segmenter_reset_forgets_the_cues_last_cores() -> None:
    """A reset (camera or lighting change) forgets the belt model and the cores kept
    for reuse: a component after it is read again, never given a core from before."""
    seg = Segmenter(SegmentParams(segmenter="learned", learned_model=str(SHIPPED)))
    seg.segment(np.full((512, 1280, 3), BELT, np.uint8))
    seg.segment(_scene("pair"))
    assert seg.cue is not None and len(seg.cue.memory.cores) == 1
    seg.reset()
    assert seg.belt.mean is None and len(seg.cue.memory.cores) == 0
