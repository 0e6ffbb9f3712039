"""The fused errors' causes (``sortline.sensor.diagnose``) on hand-built views,
and the combination fit's choice of ratio and temperature."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from control.kernels_fusion import (
    F_AMP_I,
    F_CELLS,
    F_COMPLETE,
    F_COVER,
    F_SHARED,
    F_SUM_I,
    N_INTEGRALS,
)
from core.classes import DEFAULT_CLASSES
from models.induction import FEATURE_NAMES, InductionModel
from sim.plant.feed import MOTION_KINDS
from sortline.sensor.diagnose import CAUSES, error_causes, markdown
from sortline.sensor.evaluate import Views, fit_combination, fragment_report
from sortline.sensor.scene import VelocityBook

K = len(DEFAULT_CLASSES)
STEEL, STAINLESS, ALU = (DEFAULT_CLASSES.index(c) for c in ("steel", "stainless", "aluminium"))
PLASTIC, RESIDUE = DEFAULT_CLASSES.index("plastic"), DEFAULT_CLASSES.index("residue")


def _model() -> InductionModel:
    """Summed in-phase > 0 says steel, < 0 aluminium (hand-set, as in test_fusion)."""
    d = len(FEATURE_NAMES)
    w1, w2, w3 = np.zeros((4, d)), np.zeros((4, 4)), np.zeros((K, 4))
    w1[0, 0], w1[1, 0] = 1.0, -1.0  # asinh of summed in-phase, rectified either side
    w2[0, 0], w2[1, 1] = 1.0, 1.0
    w3[STEEL, 0], w3[ALU, 1] = 10.0, 10.0
    layers = ((w1, np.zeros(4)), (w2, np.zeros(4)), (w3, np.zeros(K)))
    return InductionModel("t", DEFAULT_CLASSES, np.zeros(d), np.ones(d), layers)


def _views(rows: list[dict[str, Any]]) -> Views:
    n = len(rows)
    integ = np.zeros((n, N_INTEGRALS))
    cam = np.log(np.full((n, K), 0.02))
    for i, r in enumerate(rows):
        integ[i, F_COMPLETE] = r.get("complete", 1.0)
        integ[i, F_CELLS] = 20
        integ[i, F_SUM_I] = r.get("sum_i", 0.0)
        integ[i, F_AMP_I] = r.get("amp", 0.0)
        integ[i, F_COVER] = 1.0
        integ[i, F_SHARED] = r.get("shared", 0.0)
        cam[i, r["cam"]] = np.log(0.82)
    return Views(
        group=np.zeros(n, np.int64), fragment=np.arange(n, dtype=np.int64),
        label=np.array([r["truth"] for r in rows], np.int64), cam_logp=cam,
        seen=np.array([r.get("seen", True) for r in rows]), integrals=integ,
        whole=np.ones(n, bool), truncated=np.zeros(n, bool), history=np.full(n, 5),
        motion=np.array([MOTION_KINDS.index(r.get("motion", "lying")) for r in rows], np.int8),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("row", "cause"),
    [
        ({"truth": PLASTIC, "cam": PLASTIC, "seen": False}, CAUSES[0]),
        ({"truth": RESIDUE, "cam": PLASTIC}, CAUSES[1]),
        ({"truth": STEEL, "cam": ALU, "complete": 0.0}, CAUSES[2]),
        ({"truth": STEEL, "cam": ALU, "sum_i": -900.0, "motion": "sliding"}, CAUSES[3]),
        ({"truth": STEEL, "cam": ALU, "sum_i": -900.0, "amp": 300.0, "shared": 0.8}, CAUSES[4]),
        ({"truth": STEEL, "cam": ALU, "sum_i": 0.0, "amp": 2.0}, CAUSES[5]),
        ({"truth": STEEL, "cam": ALU, "sum_i": 30.0, "amp": 300.0}, CAUSES[6]),
        ({"truth": STEEL, "cam": ALU, "sum_i": -900.0, "amp": 300.0}, CAUSES[7]),
    ],
)
def test_each_cause_on_a_hand_built_fragment(row: dict[str, Any], cause: str) -> None:
    """One wrong fragment per case gets the cause its evidence says; a right one none."""
    right = {"truth": ALU, "cam": ALU, "sum_i": -900.0, "amp": 300.0}
    model = _model().with_combination(1.0, 0.1)  # the camera's 3.7 out-weighs 0.1 x 10
    rep = error_causes(_views([row, right]), model)
    assert rep["fused_errors"] == 1 and rep["fragments"] == 2
    assert rep["causes"][cause] == 1 and sum(rep["causes"].values()) == 1
    assert cause in markdown(rep)


def test_combination_fit_picks_the_ratio_and_temperature() -> None:
    """A bar that is right where the camera is wrong: a large enough sensor ratio
    fixes those fragments, and the temperature is the grid's least NLL."""
    rows = [{"truth": ALU, "cam": STEEL, "sum_i": -900.0}] * 3
    rows += [{"truth": ALU, "cam": ALU, "sum_i": -900.0}] * 5
    rows += [{"truth": STEEL, "cam": STEEL, "sum_i": 900.0}] * 5
    v = _views(rows)
    v = Views(**{**v.__dict__, "fragment": np.arange(len(rows), dtype=np.int64)})
    model, grid = fit_combination(v, _model())
    ratio = model.camera_temperature * model.sensor_weight
    assert fragment_report(v, model, 1.0)["fused"]["per_fragment_top1"] == 1.0
    assert ratio >= 0.375  # 10 x ratio must beat the camera's log(0.82 / 0.02) = 3.7
    temps = [g for g in grid if "nll" in g]
    assert min(temps, key=lambda g: g["nll"])["camera_temperature"] == model.camera_temperature


def test_velocity_book_edge_cases() -> None:
    book = VelocityBook(keep=3)
    ids = np.array([1, 2])
    assert np.all(book.velocity(ids) == 0)  # nothing seen
    # id 1 lies still on the belt; id 2 moves across at 1 and slides back at 0.5
    # (its camera-frame y advances at half the belt's pace); the first centre of
    # id 2 is off its line and falls out of the last 3 kept
    book.add(ids, 0.0, np.array([0.0, 50.0]), np.array([0.0, 40.0]))
    book.add(ids, 10.0, np.array([0.0, 15.0]), np.array([10.0, 5.0]))
    assert np.all(book.velocity(ids) == 0)  # two centres are not a velocity yet
    for t in (20.0, 30.0):
        book.add(ids, t, np.array([0.0, 5.0 + t]), np.array([t, 0.5 * t]))
    v = book.velocity(ids)
    assert v[0] == pytest.approx([0.0, 0.0]) and v[1] == pytest.approx([1.0, -0.5])
    assert list(book.count(ids)) == [3, 3]
    book.forget({2})
    assert list(book.count(ids)) == [0, 3]
