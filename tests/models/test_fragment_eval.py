"""Per-fragment evaluation (views combined as control combines a track's), crop
sets with ground-truth columns, crop conditions, the seed guard and the
camera-free scenario, and the speed command's quick mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.dataset import CropSet
from models.evaluate import (
    Predictions,
    crop_condition_masks,
    evaluate_predictions,
    per_fragment,
    summary,
)
from sortline.cli import main

NAMES = ("a", "b", "c", "belt")


def _set(labels: list[int], group: list[int], frag: list[int], **cols: list[float]) -> CropSet:
    n = len(labels)
    extra = {"fragment": np.asarray(frag, np.int64)}
    extra.update({k: np.asarray(v) for k, v in cols.items()})
    return CropSet(
        np.zeros((n, 8, 8, 3), np.uint8),
        np.asarray(labels, np.int16),
        np.asarray(group, np.int32),
        NAMES,
        extra,
    )


def _pred(data: CropSet, prob: list[list[float]], reject: list[float]) -> Predictions:
    return Predictions(
        data, np.asarray(prob, np.float32), np.asarray(reject, np.float32), NAMES, "belt"
    )


# fragment 7 of scene 0 (truth a): two views say a firmly, one says b weakly -> a;
# fragment 7 of scene 1 (truth b, same id, other scene): one view b, one rejected -> b;
# fragment 3 (truth c): every view rejected -> predicted reject (wrong);
# a belt mark (fragment -1) is left out of the per-fragment figures.
CASE_LABELS = [0, 0, 0, 1, 1, 2, 2, 3]
CASE_GROUP = [0, 0, 0, 1, 1, 0, 0, 0]
CASE_FRAG = [7, 7, 7, 7, 7, 3, 3, -1]
CASE_PROB = [
    [0.9, 0.05, 0.05],
    [0.8, 0.1, 0.1],
    [0.3, 0.6, 0.1],
    [0.2, 0.7, 0.1],
    [0.9, 0.05, 0.05],
    [0.1, 0.1, 0.8],
    [0.1, 0.1, 0.8],
    [0.4, 0.3, 0.3],
]
CASE_REJECT = [0.0, 0.1, 0.0, 0.2, 0.9, 0.7, 0.8, 0.95]


def test_per_fragment_combines_views_like_control() -> None:
    p = _pred(_set(CASE_LABELS, CASE_GROUP, CASE_FRAG), CASE_PROB, CASE_REJECT)
    frag = per_fragment(p)
    assert frag.confusion.sum() == 3  # three fragments, the belt mark left out
    assert frag.confusion[0, 0] == 1 and frag.confusion[1, 1] == 1 and frag.confusion[2, 3] == 1
    assert frag.top1() == pytest.approx(2 / 3)
    crop = evaluate_predictions(p)
    # single crops: a a b | b reject | reject reject -> 3 of 7 fragment crops right
    assert crop.top1() == pytest.approx(3 / 7)


def test_per_fragment_needs_ids() -> None:
    z = np.zeros(1, np.int32)
    data = CropSet(np.zeros((1, 8, 8, 3), np.uint8), z.astype(np.int16), z, NAMES)
    with pytest.raises(ValueError, match="fragment"):
        per_fragment(_pred(data, [[1.0, 0.0, 0.0]], [0.0]))


@pytest.mark.parametrize(
    ("truncated", "purity", "size_mm", "visible", "expect"),
    [
        (False, 1.0, 40.0, 1.0, "clean"),
        (True, 1.0, 40.0, 1.0, "truncated"),
        (False, 0.9, 40.0, 1.0, "merged"),
        (False, 1.0, 20.0, 1.0, "small"),
        (False, 1.0, 40.0, 0.5, "occluded"),
    ],
)
def test_crop_conditions(
    truncated: bool, purity: float, size_mm: float, visible: float, expect: str
) -> None:
    data = _set(
        [0, 3], [0, 0], [5, -1],
        truncated=[truncated, False], purity=[purity, 0.0],
        size_mm=[size_mm, 0.0], visible=[visible, 0.0],
    )  # fmt: skip
    masks = crop_condition_masks(data)
    hits = [name for name, m in masks.items() if m[0]]
    assert hits == [expect]
    assert not any(m[1] for m in masks.values())  # belt marks are no fragment crops


def test_summary_has_fragment_preset_and_condition_figures() -> None:
    data = _set(
        CASE_LABELS, CASE_GROUP, CASE_FRAG,
        truncated=[False] * 8, purity=[1.0] * 8, size_mm=[40.0] * 8, visible=[1.0] * 8,
    )  # fmt: skip
    p = _pred(data, CASE_PROB, CASE_REJECT)
    out = summary(p, {"g0": data.group == 0, "g1": data.group == 1})
    assert out["per_fragment"]["fragments"] == 3
    assert out["per_preset"]["g1"]["fragment_top1"] == 1.0
    assert out["by_condition"]["clean"]["crops"] == 7
    assert out["by_condition"]["clean"]["share_of_errors"] == 1.0


def test_crop_set_columns_survive_save_subset_concat(tmp_path: Path) -> None:
    data = _set([0, 1, 2], [0, 0, 1], [4, 5, 6], purity=[1.0, 0.8, 0.9])
    back = CropSet.load(data.save(tmp_path / "c.npz"))
    assert set(back.extra) == {"fragment", "purity"}
    assert back.extra["fragment"].tolist() == [4, 5, 6]
    sub = back.subset(back.labels > 0)
    assert sub.extra["purity"].tolist() == pytest.approx([0.8, 0.9])
    plain = CropSet(data.crops[:1], data.labels[:1], data.group[:1], NAMES)
    both = CropSet.concat([back, plain])
    assert len(both) == 4 and both.extra == {}  # only columns every set has
    with pytest.raises(ValueError, match="one entry per crop"):
        CropSet(data.crops, data.labels, data.group, NAMES, {"fragment": np.zeros(2)})


def test_training_seeds_stay_below_the_held_out_ones() -> None:
    from sortline.training_data import EVAL_SEED_BASE, training_scenes

    assert max(s.seed for s in training_scenes(3, seed=9)) < EVAL_SEED_BASE
    with pytest.raises(ValueError, match="below"):
        training_scenes(3, seed=10)


def test_camera_free_keeps_materials_and_drops_the_camera() -> None:
    from sim.plant.scenario import load_scenario
    from sortline.training_data import camera_free

    dirty = load_scenario("dirty")
    clean = camera_free(dirty)
    a, b = clean.appearance, dirty.appearance
    assert (a.noise_sigma, a.lens_dirt, a.light_drift_frac, a.belt_wear) == (0, 0, 0, 0)
    assert (a.dirt, a.oxidation) == (b.dirt, b.oxidation)
    assert clean.feed.overlap == 0 and clean.feed.class_mix == dirty.feed.class_mix


def test_speed_command_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "speed.json"
    assert main(["model", "speed", "builtin:sortline-cnn", "--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["batch"] == 64 and res["us_per_crop_median"] > 0
    assert res["us_per_crop_min"] <= res["us_per_crop_median"] <= res["us_per_crop_max"]
    assert main(["model", "speed", "builtin:sortline-cnn", "--batch", "0"]) == 2


def test_model_ceiling_bench_quick(tmp_path: Path) -> None:
    from bench.model_ceiling import main as ceiling

    out = tmp_path / "ceiling.json"
    assert ceiling(["--quick", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for pair in ("aluminium/stainless", "copper/brass"):
        assert 0.0 <= res["crops"][pair]["lda_colour"] <= 1.0
        assert set(res["textures"][pair]) == {"easy", "default", "dirty"}
