"""Segmentation on the virtual plant's camera against its ground truth, with
thresholds that fail if the belt model, splitting or the mm mapping regress.
As on the line, the shipped model's reject output drops belt marks first."""

from __future__ import annotations

import pytest

from models.registry import builtin_model_path
from sortline.training_data import eval_scenes, score_segmentation
from vision.classifier import OnnxClassifier

# preset -> (min recall, max |count error|, max split rate, max merge rate,
#            max centroid error mm, max share of segments that are no fragment)
LIMITS = {
    "easy": (0.97, 0.10, 0.03, 0.05, 1.0, 0.05),
    "default": (0.88, 0.30, 0.05, 0.25, 1.2, 0.10),
    "dirty": (0.85, 0.50, 0.05, 0.20, 1.5, 0.35),
}

# scenes per preset: one `dirty` scene swings the split and merge rates by
# several points from scene to scene (split 0.021 to 0.076 on the plant of
# issue 16), so it is judged over three
SCENES = {"dirty": 3}


@pytest.mark.parametrize("preset", sorted(LIMITS))
def test_segmentation_against_ground_truth(preset: str) -> None:
    clf = OnnxClassifier.load(builtin_model_path("sortline-cnn"))
    scenes = SCENES.get(preset, 1)
    score = score_segmentation(eval_scenes([preset], scenes, 90), classifier=clf).to_dict()
    recall, count_err, split, merge, centroid, spurious = LIMITS[preset]
    assert score["fragments"] >= 30, score
    assert score["recall"] >= recall, score
    assert abs(score["count_error"]) <= count_err, score
    assert score["split_rate"] <= split, score
    assert score["merge_rate"] <= merge, score
    assert score["centroid_err_mm_median"] <= centroid, score
    assert score["spurious_rate"] <= spurious, score
