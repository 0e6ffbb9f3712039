"""Why a fused fragment is wrong: the causes of ``fragment_report``'s errors.

Each wrongly classified fragment (camera + bar, validation views) is given the
first cause that fits, in this order:

- ``camera: no view kept``: every view rejected as "not a fragment";
- ``bar blind: non-metal taken for a non-metal``: plastic, rubber and residue
  give the bar nothing to tell apart, the camera alone decides;
- ``absent: rows incomplete``: no view's footprint had all its rows;
- ``moved on the belt``: it rolled or slid between the bar and the camera
  (the plant's truth; the line sees it only through the track's velocity);
- ``shared footprint``: more than half its cells under other footprints too;
- ``weak: small or thin``: a metal whose fitted amplitude is below 4 noise
  sigmas (its size or thickness caps its eddy currents);
- ``present, out-weighed by the camera``: the sensor term favours the true
  class over the predicted one, the camera's margin is larger;
- ``sensor wrong``: the sensor term favours the predicted class.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from control.kernels_fusion import F_AMP_I, F_AMP_Q, F_COMPLETE, F_COVER, F_SHARED
from core.classes import DEFAULT_CLASSES
from models.induction import NOISE_UNITS, InductionModel
from sim.plant.feed import MOTION_KINDS
from sortline.sensor.evaluate import Views, fragment_scores
from sortline.sensor.fusion import camera_term

__all__ = ["CAUSES", "error_causes", "markdown"]

CAUSES = (
    "camera: no view kept",
    "bar blind: non-metal taken for a non-metal",
    "absent: rows incomplete",
    "moved on the belt",
    "shared footprint",
    "weak: small or thin",
    "present, out-weighed by the camera",
    "sensor wrong",
)
NON_METALS = ("plastic", "rubber", "residue")
_MOVED = (MOTION_KINDS.index("rolling"), MOTION_KINDS.index("sliding"))


def _per_fragment(v: Views, key: np.ndarray) -> dict[str, np.ndarray]:
    """Per fragment (in ``key`` order): mean shared share, best amplitude SNR,
    any complete view, moved, the mean sensor term's inputs."""
    rows = np.flatnonzero(v.whole)
    k_rows = v.group[rows].astype(np.int64) * (1 << 32) + v.fragment[rows]
    inv = np.searchsorted(key, k_rows)
    m = key.size
    integ = v.integrals[rows]
    snr = np.hypot(integ[:, F_AMP_I], integ[:, F_AMP_Q]) * np.sqrt(integ[:, F_COVER])
    snr /= NOISE_UNITS
    out = {"snr": np.zeros(m), "complete": np.zeros(m, bool), "moved": np.zeros(m, bool)}
    np.maximum.at(out["snr"], inv, snr)
    np.logical_or.at(out["complete"], inv, integ[:, F_COMPLETE] > 0)
    np.logical_or.at(out["moved"], inv, np.isin(v.motion[rows], _MOVED))
    shared = np.zeros(m)
    np.add.at(shared, inv, integ[:, F_SHARED])
    out["shared"] = shared / np.maximum(np.bincount(inv, minlength=m), 1)
    return out


def error_causes(v: Views, model: InductionModel) -> dict[str, Any]:
    """{"fragments", "camera_errors", "fused_errors", "causes": {cause: n},
    "by_confusion": {"true->predicted": {cause: n}}} over fragments that crossed
    the bar whole."""
    sc = fragment_scores(v, model, 1.0)
    cam_pred, pred = sc.predictions()
    f = _per_fragment(v, sc.key)
    k = len(DEFAULT_CLASSES)
    cam_mean = camera_term(model, DEFAULT_CLASSES, sc.cam / np.maximum(sc.n_seen, 1)[:, None])
    sens = sc.fused - cam_mean
    causes: collections.Counter[str] = collections.Counter()
    pairs: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for i in np.flatnonzero(pred != sc.truth).tolist():
        t, p = int(sc.truth[i]), int(pred[i])
        name_t, name_p = DEFAULT_CLASSES[t], ("none" if p == k else DEFAULT_CLASSES[p])
        if p == k:
            c = CAUSES[0]
        elif name_t in NON_METALS and name_p in NON_METALS:
            c = CAUSES[1]
        elif not f["complete"][i]:
            c = CAUSES[2]
        elif f["moved"][i]:
            c = CAUSES[3]
        elif f["shared"][i] > 0.5:
            c = CAUSES[4]
        elif name_t not in NON_METALS and f["snr"][i] < 4.0:
            c = CAUSES[5]
        elif sens[i, t] > sens[i, p]:
            c = CAUSES[6]
        else:
            c = CAUSES[7]
        causes[c] += 1
        pairs[f"{name_t}->{name_p}"][c] += 1
    return {
        "fragments": int(sc.truth.size),
        "camera_errors": int((cam_pred != sc.truth).sum()),
        "fused_errors": int((pred != sc.truth).sum()),
        "causes": {c: causes[c] for c in CAUSES},
        "by_confusion": {
            key: dict(val.most_common())
            for key, val in sorted(pairs.items(), key=lambda kv: -sum(kv[1].values()))
        },
    }


def markdown(report: dict[str, Any], top: int = 12) -> str:
    """The causes and the largest confusions as Markdown tables."""
    lines = [
        f"{report['fragments']} fragments: {report['camera_errors']} wrong on the camera "
        f"alone, {report['fused_errors']} fused.",
        "",
        "| cause | fused errors |",
        "|---|---:|",
    ]
    lines += [f"| {c} | {n} |" for c, n in report["causes"].items()]
    lines += ["", "| true -> predicted | errors | causes |", "|---|---:|---|"]
    for key, val in list(report["by_confusion"].items())[:top]:
        desc = "; ".join(f"{c} {n}" for c, n in val.items())
        lines.append(f"| {key} | {sum(val.values())} | {desc} |")
    return "\n".join(lines)
