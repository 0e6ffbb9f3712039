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
