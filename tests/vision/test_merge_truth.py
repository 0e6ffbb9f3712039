"""``bench._line_truth.segment_truth`` (the merge measurement of issue 15) on a
hand-built truth with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np

from bench._line_truth import segment_truth


@dataclasses.dataclass
class _Truth:
    lab: np.ndarray
    fragment_id: np.ndarray
    class_id: np.ndarray

    def label_image(self) -> np.ndarray:
        return self.lab


def test_touching_merged_mixed_and_split_fragments() -> None:
    full = np.full((40, 80), -1, np.int64)
    full[0:20, 0:20] = 7  # fragments 7 and 8 touch, one segment holds both
    full[0:20, 20:40] = 8
    full[0:20, 60:80] = 9  # alone, but cut in two segments
    full[30:40, 0:10] = 10  # alone, its own segment
    truth = _Truth(full, np.array([7, 8, 9, 10]), np.array([1, 2, 3, 3], np.int16))
    labels = np.zeros((20, 40), np.int32)  # the segmentation at half resolution
    labels[0:10, 0:20] = 1
    labels[0:10, 30:35] = 2
    labels[0:10, 35:40] = 3
    labels[15:20, 0:5] = 4
    got = segment_truth(labels, np.array([1, 2, 3, 4], np.int32), 2, truth)
    assert got["touching"].tolist() == [True, True, False, False]
    assert got["merged"].tolist() == [True, True, False, False]
    assert got["mixed"].tolist() == [True, True, False, False]  # classes 1 and 2
    assert got["split"].tolist() == [False, False, True, False]
    assert got["n_held"].tolist() == [2, 1, 1, 1]  # half of 9 in each of its pieces
    assert got["owner"].tolist()[1:] == [9, 9, 10]
    assert got["area"].tolist() == [100, 100, 100, 25]
