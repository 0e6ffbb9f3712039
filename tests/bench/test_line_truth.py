"""The ground-truth stages of ``sortline bench line --decompose`` on a real
virtual plant: each fragment's own box is owned by its class, a belt-only box
by none, and a stepped line with true segments sorts without vision."""

from __future__ import annotations

import numpy as np

from bench._line_truth import owner_classes
from calibration.geometry import LineGeometry
from sim.plant.plant import IdlePlc, VirtualPlant
from sim.plant.scenario import load_scenario


def test_a_fragments_box_is_owned_by_its_class() -> None:
    plant = VirtualPlant(LineGeometry(), load_scenario("default"), IdlePlc(), seed=4)
    checked = 0
    for _ in range(40):
        plant.step()
        truth = plant.visible_truth()
        whole = truth.visible_frac >= 0.95
        if not whole.any():
            continue
        got = owner_classes(truth.bbox_px[whole], truth)
        np.testing.assert_array_equal(got, truth.class_id[whole].astype(np.int64))
        checked += int(whole.sum())
        lab = truth.label_image()
        rows, cols = np.nonzero(lab < 0)
        belt = np.array([[cols[0], rows[0], cols[0], rows[0]]], np.float32)
        assert owner_classes(belt, truth)[0] == -1
    assert checked >= 10


def test_stepped_line_with_true_segments_runs_and_scores() -> None:
    from bench.line import run_preset

    row = run_preset("easy", 120, 3, vision="truth-segments")
    assert row["vision"] == "truth-segments" and row["frames"] == 120
    assert row["objects_seen"] > 0 and row["purity"] is not None


def test_touching_pairs_of_a_drawn_label_image() -> None:
    from bench._line_truth import touching_pairs

    lab = np.full((8, 10), -1, np.int64)
    lab[1:4, 1:4] = 7  # 7 and 9 share a side
    lab[1:4, 4:6] = 9
    lab[4:6, 6:8] = 3  # 3 touches 9 at one corner only (diagonal)
    lab[6:8, 0:2] = 5  # alone
    np.testing.assert_array_equal(touching_pairs(lab), [[3, 9], [7, 9]])
    assert touching_pairs(np.full((4, 4), -1, np.int64)).shape == (0, 2)


def test_merge_model_draws_are_per_pair_and_near_the_rate() -> None:
    from bench._line_truth import MergeModel

    a = np.arange(0, 40000, 2, dtype=np.int64)
    b = a + 1
    pair = MergeModel.parse("truth-merged:0.3")
    assert (pair.rate, pair.per_frame, pair.flag) == (0.3, False, True)
    d5, d6 = pair.draws(a, b, 5), pair.draws(a, b, 6)
    np.testing.assert_array_equal(d5, d6)  # once per pair: the frame does not matter
    assert abs(float((d5 < 0.3).mean()) - 0.3) < 0.02
    np.testing.assert_array_equal(pair.draws(a[:7], b[:7], 5), d5[:7])  # not a stream
    frame = MergeModel.parse("truth-merged:0.3:frame:noflag")
    assert frame.per_frame and not frame.flag
    f5, f6 = frame.draws(a, b, 5), frame.draws(a, b, 6)
    assert float(np.mean(f5 == f6)) < 0.01
    assert abs(float(((f5 < 0.3) & (f6 < 0.3)).mean()) - 0.09) < 0.02  # independent frames


def test_merge_model_refuses_a_bad_spec_in_one_line() -> None:
    import pytest

    from bench._line_truth import MergeModel

    for spec, words in (
        ("truth-merged", "RATE"),
        ("truth-merged:x", "'x' is not a number"),
        ("truth-merged:1.5", "not within [0, 1]"),
        ("truth-merged:0.2:often", "unknown option"),
    ):
        with pytest.raises(ValueError) as e:
            MergeModel.parse(spec)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SystemExit):
        from bench.line import main

        main(["--presets", "easy", "--visions", "truth-merged:often"])


def test_merged_detections_join_touching_fragments_of_a_crowded_belt() -> None:
    from bench._line_truth import MergeModel, merged_detections, touching_pairs
    from bench.air import truth_detections

    geo = LineGeometry()
    plant = VirtualPlant(geo, load_scenario("crowded"), IdlePlc(), seed=11)
    joined = 0
    for _ in range(60):
        plant.step()
        truth = plant.visible_truth()
        single, fid = truth_detections(truth, geo, 10)
        none = merged_detections(truth, geo, 10, MergeModel(rate=0.0))
        np.testing.assert_array_equal(none.extent_mm, single.extent_mm)
        tally = {"touching": 0, "touching_merged": 0}
        every = merged_detections(truth, geo, 10, MergeModel(rate=1.0), tally)
        assert tally["touching"] == tally["touching_merged"]  # rate 1: every touching one
        # rate 1: one segment per connected group of touching kept fragments
        kept = {int(f): k for k, f in enumerate(fid.tolist())}
        parent = list(range(len(fid)))

        def root(k: int, parent: list[int] = parent) -> int:
            while parent[k] != k:
                k = parent[k]
            return k

        for a, b in touching_pairs(truth.label_image()).tolist():
            if a in kept and b in kept:
                parent[root(kept[a])] = root(kept[b])
        groups: dict[int, list[int]] = {}
        for k in range(len(fid)):
            groups.setdefault(root(k), []).append(k)
        assert len(every) == len(groups)
        assert int(every.merged.sum()) == sum(len(g) > 1 for g in groups.values())
        for g in groups.values():
            if len(g) < 2:
                continue
            joined += 1
            lo, hi = single.extent_mm[g, 0].min(), single.extent_mm[g, 1].max()
            (row,) = np.flatnonzero(
                np.isclose(every.extent_mm[:, 0], lo) & np.isclose(every.extent_mm[:, 1], hi)
                & every.merged
            )  # fmt: skip
            lab = truth.label_image()
            lead = max(g, key=lambda k: int((lab == fid[k]).sum()))
            assert every.class_id[row] == single.class_id[lead]  # the most visible member's
        noflag = merged_detections(truth, geo, 10, MergeModel(rate=1.0, flag=False))
        assert not noflag.merged.any() and len(noflag) == len(every)
    assert joined >= 20
