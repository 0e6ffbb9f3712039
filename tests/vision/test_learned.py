"""The learned instance cue (``vision.learned``): its targets, its post-processing
on hand-built core maps, the shipped ONNX file and the refusal of bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from core.errors import InputFileError
from models.seg_dataset import targets_from_labels
from models.seg_models import resolve_seg_model
from vision.learned import InstanceCue, core_map, net_input, split_learned
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


def test_core_map_window_matches_the_whole_frame() -> None:
    """The cue read in the window around the large components (even offsets, 32 px of
    context) gives their pixels nearly what the whole frame gives; 0 elsewhere."""
    cue = InstanceCue.load(SHIPPED)
    seg = Segmenter(SegmentParams(segmenter="learned", learned_model=str(SHIPPED)))
    seg.segment(np.full((512, 1280, 3), BELT, np.uint8))
    small = seg.downsample(_scene("pair"))
    fg = seg.mask(small)
    labels, stats, _ = _components(fg > 0)
    core = core_map(cue, small, seg.belt.mean_u8, fg, stats, seg.params)
    whole, _ = cue.predict(small, seg.belt.mean_u8, fg)
    on = labels > 0
    assert np.abs(core[on] - whole[on]).max() < 0.05
    far = np.zeros_like(on)
    far[:, :200] = True  # more than 32 px left of the pair (columns 283-349 low-res)
    assert core[far].max() == 0.0


def test_render_run_gives_aligned_samples() -> None:
    from models.seg_dataset import SegRun
    from sortline.seg_render import render_run

    data = render_run(SegRun("crowded", 0.0, 2.5, 1001), samples=2, every=2, warm=10)
    assert len(data) == 2 and data.small.shape == (2, 256, 640, 3)
    assert data.belt.shape == data.small.shape and data.fg.shape == data.core.shape == (2, 256, 640)
    frag = data.core > 0
    assert frag.any() and (data.contact[~frag] == 0).all()  # contact only on fragments
    assert (data.fg[frag] > 0).mean() > 0.8  # the line's mask covers the truth's fragments


def test_train_and_export_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from models.seg_dataset import SegSet
    from models.seg_train import SegTrainConfig, export_seg_onnx, train_seg

    lab = np.full((128, 128), -1, np.int64)
    lab[40:80, 30:64] = 1
    lab[40:80, 64:98] = 2
    core, contact = targets_from_labels(lab)
    small = np.full((128, 128, 3), BELT, np.uint8)
    small[lab == 1], small[lab == 2] = (40, 110, 200), (200, 200, 205)
    data = SegSet(small=small[None], belt=np.full_like(small, BELT)[None],
                  fg=np.where(lab >= 0, 255, 0).astype(np.uint8)[None], core=core[None],
                  contact=contact[None], runs=("hand-built",))  # fmt: skip
    net, summary = train_seg(data, data, SegTrainConfig(steps=4, batch=2))
    assert len(summary["history"]) == 4 and summary["best_val_loss"] > 0
    path = tmp_path / "cue.onnx"
    assert export_seg_onnx(net, path, {"sortline.kind": "instance-cue"}, data) < 1e-4
    got, _ = InstanceCue.load(path).predict(small, np.full_like(small, BELT), data.fg[0])
    assert got.shape == (128, 128)
