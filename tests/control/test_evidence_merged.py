"""``merged_evidence``: what a probable merge's view is worth, per recipe ``prefer``;
and the tracker takes a NaN row as no evidence."""

from __future__ import annotations

import numpy as np
import pytest

from control.evidence import MERGED_TEMPER, merged_evidence
from control.tracker import class_log_probs
from core.types import Detections


def _dets(prob: list[list[float]], merged: list[bool]) -> Detections:
    p = np.asarray(prob, np.float32)
    n = len(p)
    cid = p.argmax(axis=1).astype(np.int16)
    return Detections(
        frame_id=1, tick=10, bbox_px=np.zeros((n, 4), np.float32),
        centroid_mm=np.zeros((n, 2)), extent_mm=np.zeros((n, 4)),
        area_mm2=np.ones(n, np.float32), class_id=cid,
        confidence=p[np.arange(n), cid], class_prob=p, merged=np.asarray(merged),
    )  # fmt: skip


PROB = [[0.9, 0.08, 0.02], [0.7, 0.2, 0.1]]


def test_recovery_leaves_the_views_alone() -> None:
    d = _dets(PROB, [True, False])
    assert merged_evidence(d, "recovery") is d


def test_purity_drops_the_evidence_of_merged_views_only() -> None:
    got = merged_evidence(_dets(PROB, [True, False]), "purity")
    assert np.isnan(got.class_prob[0]).all() and got.class_id[0] == -1
    np.testing.assert_array_equal(got.class_prob[1], np.array(PROB[1], np.float32))
    _, has = class_log_probs(got, 3)
    assert has.tolist() == [False, True]


def test_balanced_flattens_merged_views() -> None:
    got = merged_evidence(_dets(PROB, [True, False]), "balanced")
    want = np.power(np.array(PROB[0]), MERGED_TEMPER)
    np.testing.assert_allclose(got.class_prob[0], want / want.sum(), rtol=1e-6)
    assert got.class_id[0] == 0 and got.confidence[0] == pytest.approx(want[0] / want.sum())
    np.testing.assert_array_equal(got.class_prob[1], np.array(PROB[1], np.float32))


@pytest.mark.parametrize("prefer", ["purity", "balanced", "recovery"])
def test_nothing_flagged_changes_nothing(prefer: str) -> None:
    d = _dets(PROB, [False, False])
    assert merged_evidence(d, prefer) is d


def test_a_bad_prefer_is_refused() -> None:
    with pytest.raises(ValueError, match="prefer"):
        merged_evidence(_dets(PROB, [True, False]), "cheap")


def test_detections_merged_defaults_to_false_and_is_validated() -> None:
    d = _dets(PROB, [False, False])
    plain = Detections(
        frame_id=1, tick=10, bbox_px=d.bbox_px, centroid_mm=d.centroid_mm,
        extent_mm=d.extent_mm, area_mm2=d.area_mm2, class_id=d.class_id,
        confidence=d.confidence, class_prob=d.class_prob,
    )  # fmt: skip
    assert plain.merged.tolist() == [False, False]
    assert plain[np.array([True, False])].merged.tolist() == [False]
    with pytest.raises(ValueError, match="merged"):
        _dets(PROB, [True])  # one flag for two rows
