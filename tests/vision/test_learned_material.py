"""seg-v2's material head (``vision.learned``, ``models.seg_train``): its targets
on a hand-built label image, the material labels, the split of a hand-built
two-material component with one core (split) and of a one-material component
with texture (not split), loading seg-v1 and seg-v2 files and refusing
malformed ones in one line."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError
from models.seg_dataset import IGNORE, material_from_labels
from models.seg_models import SEG_MODELS, resolve_seg_model
from tests.vision.test_learned import two_piece_set
from vision.learned import (
    NO_MATERIAL,
    InstanceCue,
    core_map,
    material_labels,
    material_seeds,
    split_learned,
)
from vision.segment import Segmenter, SegmentParams

P = SegmentParams()
BELT = 95


def test_material_targets_hand_built_label_image() -> None:
    """Each fragment's pixels take its class index, the belt and unknown ids IGNORE."""
    lab = np.full((12, 20), -1, np.int64)
    lab[2:8, 2:9] = 17  # class 3 (copper)
    lab[2:8, 9:15] = 4  # class 2 (aluminium), touching it
    lab[9:11, 16:19] = 99  # an id the truth does not name
    got = material_from_labels(lab, np.array([4, 17, 23]), np.array([2, 3, 9], np.int16))
    assert got.dtype == np.uint8 and got.shape == lab.shape
    assert (got[lab == 17] == 3).all() and (got[lab == 4] == 2).all()
    assert (got[lab < 0] == IGNORE).all() and (got[lab == 99] == IGNORE).all()
    empty = material_from_labels(np.full((3, 3), -1, np.int64), np.zeros(0, np.int64),
                                 np.zeros(0, np.int16))  # fmt: skip
    assert (empty == IGNORE).all()


def test_material_labels_argmax_confidence_and_repeat() -> None:
    """Argmax where its softmax probability reaches ``conf``, else NO_MATERIAL; each
    half-resolution pixel covers 2 x 2 of the output, cut to the asked shape."""
    logits = np.zeros((3, 2, 3), np.float32)
    logits[1, 0, 0] = 5.0  # sure: class 1
    logits[2, 0, 1] = 0.5  # unsure between three (p ~ 0.45)
    logits[0, 1, 2] = 9.0  # sure: class 0
    got = material_labels(logits, 0.6, (3, 5))
    assert got.shape == (3, 5) and got.dtype == np.uint8
    assert (got[0:2, 0:2] == 1).all() and (got[0:2, 2:4] == NO_MATERIAL).all()
    assert (got[2, 4] == 0) and (got[2, 0:2] == NO_MATERIAL).all()
    assert (material_labels(logits, 0.3, (4, 6))[0:2, 2:4] == 2).all()


def _two_material_component() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(h, w) int32 labels of one component: a 30 x 60 plate (left half material 3,
    right half material 2), its stats, centroids, and one core in the middle."""
    mask = np.zeros((60, 100), bool)
    mask[15:45, 20:80] = True
    _, lab, stats, cents = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    core = np.zeros(mask.shape, np.float32)
    core[22:38, 35:65] = 0.9  # one core region across both halves
    return lab.astype(np.int32), stats.astype(np.float64), cents, core


def test_split_one_core_two_materials() -> None:
    """One core, two coherent materials: split into two pieces along the material
    edge; the same component without materials stays whole."""
    labels, stats, cents, core = _two_material_component()
    mat = np.full(labels.shape, NO_MATERIAL, np.uint8)
    mat[15:45, 20:50] = 3
    mat[15:45, 50:80] = 2
    small = np.full((*labels.shape, 3), 150, np.uint8)
    whole = labels.copy()
    split_learned(small, whole, stats.copy(), cents.copy(), core, P, None)
    assert np.unique(whole[whole > 0]).size == 1
    split_learned(small, whole, stats.copy(), cents.copy(), core, P,
                  np.full(labels.shape, NO_MATERIAL, np.uint8))  # fmt: skip
    assert np.unique(whole[whole > 0]).size == 1
    st, ce = split_learned(small, labels, stats, cents, core, P, mat)
    pieces = np.unique(labels[labels > 0])
    assert pieces.size == 2 and st.shape == (3, 5) and ce.shape == (3, 2)
    left, right = labels[30, 25], labels[30, 75]
    assert left != right
    assert (labels[15:45, 20:48] == left).all() and (labels[15:45, 52:80] == right).all()


def test_split_core_region_holding_two_materials() -> None:
    """Two cores, one of them across two materials: three pieces; with each core on
    one material: the two the cores give."""
    labels, stats, cents, _ = _two_material_component()
    core = np.zeros(labels.shape, np.float32)
    core[22:38, 24:32] = 0.9  # core A: material 3 only
    core[22:38, 40:72] = 0.9  # core B: materials 3 (40-54) and 2 (54-72)
    mat = np.full(labels.shape, 2, np.uint8)
    mat[15:45, 20:54] = 3
    mat[labels == 0] = NO_MATERIAL
    small = np.full((*labels.shape, 3), 150, np.uint8)
    got = labels.copy()
    split_learned(small, got, stats.copy(), cents.copy(), core, P, mat)
    assert np.unique(got[got > 0]).size == 3
    assert len({got[30, 27], got[30, 46], got[30, 68]}) == 3
    one = np.full(labels.shape, 3, np.uint8)
    got = labels.copy()
    split_learned(small, got, stats.copy(), cents.copy(), core, P, one)
    assert np.unique(got[got > 0]).size == 2


@pytest.mark.parametrize("speckle", [1, 2])
def test_one_material_with_texture_is_not_split(speckle: int) -> None:
    """A plate of one material whose texture makes the net call scattered small
    patches another class (rust on steel) or nothing: no patch is a coherent region
    large enough, and it stays whole."""
    labels, stats, cents, core = _two_material_component()
    mat = np.zeros(labels.shape, np.uint8)  # steel
    rng = np.random.default_rng(3)
    for r, c in rng.integers((15, 20), (45 - speckle, 80 - speckle), size=(40, 2)).tolist():
        mat[r : r + speckle + 1, c : c + speckle + 1] = 3 if rng.random() < 0.7 else NO_MATERIAL
    mat[labels == 0] = NO_MATERIAL
    assert (mat == 3).sum() >= P.learned_min_seed_px / P.scale**2  # many, but scattered
    small = np.full((*labels.shape, 3), 150, np.uint8)
    split_learned(small, labels, stats, cents, core, P, mat)
    assert np.unique(labels[labels > 0]).size == 1


def test_material_seeds_need_each_class_large_enough() -> None:
    """One core and a second class of fewer than ``min_mat`` pixels: one seed."""
    own = np.ones((20, 40), bool)
    mk = np.zeros((20, 40), np.int32)
    mk[5:15, 5:35] = 1
    mat = np.zeros((20, 40), np.uint8)
    mat[:, 30:] = 4  # 200 px of class 4
    seeds, g, origin = material_seeds(own, mk, mat, 60.0, 201.0)
    assert g == 1 and (seeds[mk == 1] == 1).all() and origin.tolist() == [0, 1]
    seeds, g, origin = material_seeds(own, mk, mat, 10.0, 200.0)
    assert g == 2  # the core region holds 50 px of class 4: cut there already
    assert origin.tolist() == [0, 1, 1]  # both pieces of core region 1
    seeds, g, origin = material_seeds(own, mk, mat, 60.0, 200.0)
    assert g == 2 and np.unique(seeds[:, 30:]).size == 1  # by the materials: their regions
    assert set(np.unique(seeds).tolist()) == {1, 2} and seeds[0, 0] != seeds[0, 35]
    assert origin.tolist() == [0, 0, 0]  # the component's material regions


def _two_output_file(path: Path, n_cls: int, meta: dict[str, str]) -> Path:
    """A tiny ONNX model: y (1, 2, h, w) and material (1, n_cls, h/2, w/2)."""
    wy = helper.make_tensor("wy", TensorProto.FLOAT, [2, 4, 1, 1], [0.1] * 8)
    wm = helper.make_tensor("wm", TensorProto.FLOAT, [n_cls, 4, 2, 2], [0.1] * n_cls * 16)
    nodes = [helper.make_node("Conv", ["x", "wy"], ["y"]),
             helper.make_node("Conv", ["x", "wm"], ["material"], strides=[2, 2])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, "h", "w"]),
         helper.make_tensor_value_info("material", TensorProto.FLOAT, [1, n_cls, "h2", "w2"])],
        initializer=[wy, wm],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def test_tiny_two_output_file_loads(tmp_path: Path) -> None:
    meta = {"sortline.kind": "instance-cue", "sortline.classes": json.dumps(["a", "b", "c"])}
    cue = InstanceCue.load(_two_output_file(tmp_path / "v2.onnx", 3, meta))
    assert cue.classes == ("a", "b", "c")
    z = np.zeros((10, 14, 3), np.uint8)
    core, mat = cue.predict_core_material(z, z, np.zeros((10, 14), np.uint8), 0.0)
    assert core.shape == mat.shape == (10, 14) and mat.max() < 3


@pytest.mark.parametrize(
    ("n_cls", "classes", "says"),
    [
        (3, None, "no class list"),
        (3, "not json", "no class list"),
        (3, json.dumps([]), "no class list"),
        (3, json.dumps(["a", 2, "c"]), "no class list"),
        (3, json.dumps(["a", "b"]), "material output must be (1, 2, h/2, w/2)"),
    ],
)
def test_malformed_material_model_refused_in_one_line(
    tmp_path: Path, n_cls: int, classes: str | None, says: str
) -> None:
    meta = {"sortline.kind": "instance-cue"}
    if classes is not None:
        meta["sortline.classes"] = classes
    path = _two_output_file(tmp_path / "bad.onnx", n_cls, meta)
    with pytest.raises(InputFileError) as err:
        Segmenter(SegmentParams(segmenter="learned", learned_model=str(path)))
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and says in msg


def test_shipped_v1_and_v2_load() -> None:
    """seg-v1: core and contact only; seg-v2: a material head over the line's classes."""
    assert set(SEG_MODELS) >= {"seg-v1", "seg-v2"}
    v1 = InstanceCue.load(resolve_seg_model("builtin:seg-v1"))
    v2 = InstanceCue.load(resolve_seg_model("builtin:seg-v2"))
    assert v1.classes == () and v2.classes == DEFAULT_CLASSES
    h, w = 37, 52
    small, belt = np.full((h, w, 3), 120, np.uint8), np.full((h, w, 3), BELT, np.uint8)
    fg = np.zeros((h, w), np.uint8)
    for cue in (v1, v2):
        core, mat = cue.predict_core_material(small, belt, fg, 0.6)
        assert core.shape == mat.shape == (h, w)
    assert (v1.predict_core_material(small, belt, fg, 0.0)[1] == NO_MATERIAL).all()


def _pair(seg: Segmenter) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A copper disc touching an aluminium one (full resolution), at the segmenter's
    resolution: frame, mask, labels, stats."""
    img = np.full((512, 1280, 3), BELT, np.uint8)
    seg.segment(img)
    cv2.circle(img, (600, 250), 34, (40, 110, 200), -1)
    cv2.circle(img, (664, 250), 34, (200, 200, 205), -1)
    small = seg.downsample(img)
    fg = seg.mask(small)
    _, lab, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    return small, fg, lab.astype(np.int32), stats.astype(np.float64)


def test_core_map_sets_and_reuses_the_material_map() -> None:
    """With seg-v2, ``core_map`` fills ``cue.material`` in the large components (and
    NO_MATERIAL elsewhere); an unchanged component next frame keeps its material."""
    path = resolve_seg_model("builtin:seg-v2")
    seg = Segmenter(SegmentParams(segmenter="learned", learned_model=str(path)))
    small, fg, lab, stats = _pair(seg)
    cue = seg.cue
    assert cue is not None
    core_map(cue, small, seg.belt.mean_u8, fg, stats, P)
    assert cue.material is not None and cue.material.shape == fg.shape
    x, y, w, h = (int(v) for v in stats[1, :4])
    box = np.zeros(fg.shape, bool)
    box[y : y + h, x : x + w] = True
    assert (cue.material[~box] == NO_MATERIAL).all()
    assert (cue.material[lab > 0] != NO_MATERIAL).mean() > 0.5
    cue.memory.mats[0][:] = 7
    core_map(cue, small, seg.belt.mean_u8, fg, stats, P)
    assert (cue.material[lab > 0] == 7).all()


def test_v2_train_and_export_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from models.seg_train import SegTrainConfig, export_seg_onnx, train_seg

    small, data = two_piece_set(128, (40, 80), (30, 64, 98), np.array([3, 2]))
    net, summary = train_seg(data, data, SegTrainConfig(steps=4, batch=2, n_classes=4))
    assert summary["best_val_loss"] > 0
    path = tmp_path / "v2.onnx"
    meta = {"sortline.kind": "instance-cue", "sortline.classes": json.dumps(list("abcd"))}
    assert export_seg_onnx(net, path, meta, data) < 1e-4
    cue = InstanceCue.load(path)
    assert cue.classes == tuple("abcd")
    got_core, got_mat = cue.predict_core_material(small, np.full_like(small, BELT), data.fg[0], 0.0)
    assert got_core.shape == got_mat.shape == (128, 128) and got_mat.max() < 4


def test_bench_study_compares_seg_models_side_by_side() -> None:
    """``--seg-model builtin:seg-v1,builtin:seg-v2``: one ``tracks_learned[NAME]``
    pipeline per model in place of ``tracks_learned``; one model: the old name."""
    from bench.vision import _variants

    two = _variants(("tracks", "tracks_learned"), "builtin:seg-v1,builtin:seg-v2")
    assert list(two) == ["tracks", "tracks_learned[seg-v1]", "tracks_learned[seg-v2]"]
    paths = [Path(sp.learned_model).name for _, sp in list(two.values())[1:]]
    assert paths == ["seg-v1.onnx", "seg-v2.onnx"]
    one = _variants(("tracks", "tracks_learned"), "builtin:seg-v2")
    assert list(one) == ["tracks", "tracks_learned"]
    assert Path(one["tracks_learned"][1].learned_model).name == "seg-v2.onnx"


def test_bench_line_config_takes_the_seg_model(tmp_path: Path) -> None:
    from bench.line import _config

    cfg = _config(None, tmp_path, None, "learned", "builtin:seg-v2")
    assert cfg.vision.segmenter == "learned" and cfg.vision.segmenter_model == "builtin:seg-v2"
    p = cfg.vision.segment_params(cfg.resolve_path)
    assert Path(p.learned_model).name == "seg-v2.onnx"


def test_material_head_trained_on_a_frozen_v1_keeps_v1s_cores(tmp_path: Path) -> None:
    """``init_from`` seg-v1 with ``freeze_core``: only the material head learns, so
    the exported cue's core and contact are seg-v1's to float precision."""
    pytest.importorskip("torch")
    from models.seg_train import SegTrainConfig, export_seg_onnx, train_seg

    small, data = two_piece_set(64, (20, 40), (10, 32, 54), np.array([3, 0]))
    fg = data.fg[0]
    v1_path = resolve_seg_model("builtin:seg-v1")
    cfg = SegTrainConfig(steps=3, batch=2, lr=0.1, init_from=str(v1_path), freeze_core=True)
    net, _ = train_seg(data, data, cfg)
    path = tmp_path / "v2.onnx"
    meta = {"sortline.kind": "instance-cue", "sortline.classes": json.dumps(list(DEFAULT_CLASSES))}
    export_seg_onnx(net, path, meta, data)
    belt = np.full_like(small, BELT)
    want = InstanceCue.load(v1_path).predict(small, belt, fg)
    got = InstanceCue.load(path).predict(small, belt, fg)
    assert np.abs(got[0] - want[0]).max() < 1e-5 and np.abs(got[1] - want[1]).max() < 1e-5
