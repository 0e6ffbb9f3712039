"""Segmentation against the virtual plant's ground truth on every preset (held-out
seeds, the bench's definitions: ``sortline.training_data.score_segmentation``).
Short scenes, so the thresholds carry a margin over the bench's figures."""

from __future__ import annotations

import pytest

from sortline.training_data import eval_scenes, score_segmentation
from vision.segment import SegmentParams

# preset: (min recall, max split rate, max merge rate)
LIMITS = {
    "easy": (0.97, 0.03, 0.03),
    "default": (0.93, 0.06, 0.16),
    "crowded": (0.93, 0.07, 0.36),
    "fast": (0.95, 0.05, 0.17),
    "dirty": (0.85, 0.08, 0.15),
}

# scenes per preset: one `dirty` scene swings the split and merge rates by
# several points from scene to scene (split 0.021 to 0.076 on the plant of
# issue 16), so it is judged over three
SCENES = {"dirty": 3}


@pytest.mark.parametrize("preset", list(LIMITS))
def test_segmentation_vs_ground_truth(preset: str) -> None:
    recall, split, merge = LIMITS[preset]
    score = score_segmentation(eval_scenes([preset], SCENES.get(preset, 1), 90)).to_dict()
    assert score["fragments"] > 40
    assert score["recall"] >= recall
    assert score["split_rate"] <= split
    assert score["merge_rate"] <= merge
    assert score["centroid_err_mm_median"] <= 1.2


def test_splitting_cuts_merges_on_a_crowded_belt() -> None:
    scenes = eval_scenes(["crowded"], 1, 90)
    merged = score_segmentation(scenes, segment=SegmentParams(split=False)).to_dict()
    split = score_segmentation(scenes).to_dict()
    assert split["merge_rate"] <= 0.8 * merged["merge_rate"]
    assert abs(split["count_error"]) < abs(merged["count_error"])
