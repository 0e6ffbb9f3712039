"""The per-class combination of camera and bar (``InductionModel.class_terms``):
stored and refused as documented, and fitted where one scalar weight cannot
serve every class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.classes import DEFAULT_CLASSES
from core.errors import InputFileError
from models.induction import FEATURE_NAMES, InductionModel
from sortline.sensor.evaluate import _fit_terms
from sortline.sensor.fusion import camera_term, sensor_term


def _model(terms: np.ndarray | None = None) -> InductionModel:
    k, d = len(DEFAULT_CLASSES), len(FEATURE_NAMES)
    rng = np.random.default_rng(1)
    layers = (
        (rng.normal(0, 0.5, (8, d)), np.zeros(8)),
        (rng.normal(0, 0.5, (8, 8)), np.zeros(8)),
        (rng.normal(0, 0.5, (k, 8)), np.zeros(k)),
    )
    return InductionModel(
        "t", DEFAULT_CLASSES, np.zeros(d), np.ones(d), layers, 0.7, 0.5, class_terms=terms
    )


def test_terms_round_trip_and_apply(tmp_path: Path) -> None:
    k = len(DEFAULT_CLASSES)
    terms = np.column_stack([np.linspace(0.5, 1.5, k), np.linspace(2, 0, k), np.arange(k) / 10])
    model = _model(terms)
    path = tmp_path / "m.json"
    model.save(path)
    back = InductionModel.load(path)
    assert back.class_terms is not None and np.array_equal(back.class_terms, terms)
    names = ("aluminium", "unknown", "steel")
    cam, sens, bias = back.combination(names)
    al, st = DEFAULT_CLASSES.index("aluminium"), DEFAULT_CLASSES.index("steel")
    assert cam.tolist() == pytest.approx([terms[al, 0] / 0.7, 1 / 0.7, terms[st, 0] / 0.7])
    assert sens.tolist() == pytest.approx([terms[al, 1] * 0.5, 0.0, terms[st, 1] * 0.5])
    assert bias.tolist() == pytest.approx([terms[al, 2], 0.0, terms[st, 2]])
    integ = np.abs(np.random.default_rng(2).normal(10, 5, (4, 16)))
    logp = np.maximum(back.log_probs(integ), np.log(1e-3))
    got = sensor_term(back, names, integ, 2.0)
    assert got[:, 1].tolist() == [0.0] * 4  # a class the model does not know
    assert got[:, 0] == pytest.approx(2.0 * (sens[0] * logp[:, al] + bias[0]))
    assert camera_term(back, names, np.ones((1, 3)))[0] == pytest.approx(cam)
    plain = _model()  # no terms: the scalar combination, 1 / T and w
    assert plain.combination(names)[0] == pytest.approx([1 / 0.7] * 3)
    assert "class_terms" not in plain.to_dict()


@pytest.mark.parametrize("bad", [np.ones((3, 3)), np.full((10, 3), np.nan), -np.ones((10, 3))])
def test_bad_terms_refused(bad: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_terms"):
        _model(bad)
    d = _model().to_dict()
    d["class_terms"] = {"rows": bad.tolist()}
    path = tmp_path / "bad.json"
    import json

    path.write_text(json.dumps(d))
    with pytest.raises(InputFileError, match="class_terms"):
        InductionModel.load(path)


def test_fitted_terms_weigh_each_sensor_by_class() -> None:
    """Synthetic evidence: for classes 0-1 the camera is noise and the bar is right,
    for classes 2-3 the other way round. One scalar weight gets about half of it
    wrong whatever it is; the per-class terms learn whom to trust for which class."""
    rng = np.random.default_rng(4)
    m, k = 4000, 4
    truth = rng.integers(0, k, m)
    onehot = np.eye(k)[truth]
    good, noise = 3.0 * onehot, rng.normal(0, 3.0, (m, k))
    cam = np.where(truth[:, None] >= 2, good, 0.0) + noise
    sens = np.where(truth[:, None] < 2, good, 0.0) + rng.normal(0, 3.0, (m, k))
    best_scalar = max(
        float(((cam + r * sens).argmax(axis=1) == truth).mean()) for r in (0.25, 0.5, 1, 2, 4)
    )
    terms = _fit_terms(cam, sens, truth, 0.01)
    z = cam * terms[:, 0] + sens * terms[:, 1] + terms[:, 2]
    fitted = float((z.argmax(axis=1) == truth).mean())
    assert fitted > best_scalar + 0.03
    assert np.all(terms[:, :2] >= 0)
    assert terms[0, 1] > terms[0, 0] and terms[3, 0] > terms[3, 1]  # whom it trusts


def test_weighing_a_class_raises_its_recall_at_a_threshold() -> None:
    """Fragments of the weighed class count ``w`` times in the fit (``weigh_class``,
    the recipe's class): its recall at probability 0.5 rises with w, at some cost
    to the others; w = 1 is the unweighted fit exactly."""
    rng = np.random.default_rng(6)
    m, k = 3000, 4
    truth = rng.integers(0, k, m)
    onehot = np.eye(k)[truth]
    cam = 1.5 * onehot + rng.normal(0, 1.5, (m, k))
    sens = 1.5 * onehot + rng.normal(0, 1.5, (m, k))
    plain = _fit_terms(cam, sens, truth, 0.01)
    assert np.allclose(_fit_terms(cam, sens, truth, 0.01, np.ones(m)), plain, atol=1e-6)

    def recall0(terms: np.ndarray) -> float:
        z = cam * terms[:, 0] + sens * terms[:, 1] + terms[:, 2]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return float((p[truth == 0, 0] >= 0.5).mean())

    heavy = _fit_terms(cam, sens, truth, 0.01, np.where(truth == 0, 4.0, 1.0))
    assert recall0(heavy) > recall0(plain) + 0.05
    assert heavy[0, 2] > plain[0, 2]  # its bias rose
