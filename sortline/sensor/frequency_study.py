"""Which drive frequency tells copper from brass? A study of the plant's own bar.

The plant's coil response (``sim.plant.induction.layer_response``, Dodd & Deeds)
for a non-magnetic layer (mu_r = 1) reduces to a function of two numbers:

    R(f; sigma, t, lambda) = F(x, lambda t),   x = 2 pi f mu0 sigma / lambda^2

(a1 = lambda sqrt(1 + j x): lambda^2 cancels between numerator and denominator,
and e^{-2 a1 t} = e^{-2 lambda t sqrt(1 + j x)}). Frequency and conductivity
enter only as their product. A copper piece (sigma_c, t, lambda) and a brass
piece (sigma_b, k t, lambda / k) with k = sqrt(sigma_c / sigma_b) (~1.9 for the
plant's 5.5-5.96e7 and 1.4-1.7e7 S/m) read the same complex response at every
frequency: no set of frequencies can tell them apart, only the piece's size
(lambda = sqrt(lambda_coil^2 + (3.83 / a)^2), a = half its smaller extent),
which the bar does not read and the camera's box gives with errors (rotated,
jagged, bent pieces), and the plant's ranges of thickness.

``degenerate_twin`` checks the identity on the plant's own function;
``study`` measures it over the plant's own fragment draws: a k-nearest-neighbour
copper/brass classifier on what the bar reads (phases, amplitude ratios,
amplitude with the unknown coupling of its height, a measurement noise) and
the camera's box (smaller and larger extent, 2 mm edge noise), for the
two-frequency bar (5 + 50 kHz) and for each candidate third frequency. The
same classifier with the piece's true lambda shows where the information is.

``python -m sortline.sensor.frequency_study --json OUT`` writes the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.plant.induction import InductionBar, layer_response, material_em
from sim.plant.materials import ELECTRICAL
from sim.plant.shapes import Shape, make_shape

__all__ = ["Pieces", "degenerate_twin", "draw_pieces", "knn_accuracy", "study"]

MU0 = 4e-7 * math.pi
BASE_HZ = (5000.0, 50000.0)
CANDIDATES_HZ = (500.0, 1000.0, 2000.0, 10000.0, 15000.0, 20000.0, 100000.0, 200000.0)
_J1_ZERO = 3.8317


def degenerate_twin(
    sigma_s_m: float, thick_mm: float, lam_per_m: float, sigma_twin_s_m: float
) -> tuple[float, float]:
    """The (thickness mm, lambda 1/m) at which a layer of ``sigma_twin_s_m`` reads
    exactly what (sigma, thick, lambda) reads at every frequency."""
    if not (sigma_s_m > 0 and sigma_twin_s_m > 0 and thick_mm > 0 and lam_per_m > 0):
        raise ValueError(
            f"degenerate_twin: sigma {sigma_s_m}, {sigma_twin_s_m} S/m, thickness "
            f"{thick_mm} mm, lambda {lam_per_m} 1/m must be > 0"
        )
    k = math.sqrt(sigma_s_m / sigma_twin_s_m)
    return thick_mm * k, lam_per_m / k


@dataclasses.dataclass(frozen=True)
class Pieces:
    """label (n,) 0 copper, 1 brass; resp (n, F) complex: response x coupling at
    ``frequencies_hz``; lam (n,) 1/m the piece's lambda; box (n, 2) mm: the smaller
    and larger extent of its axis-aligned box on the belt (rotated, edge noise);
    area (n,) mm2: its segment's area (perimeter x edge noise added); wire (n,)
    bool: a copper wire (its thickness 0.8 x its diameter, a its radius); oriented
    (n, 2) mm: the smaller and larger extent of its own (oriented) box, edge noise
    as ``box``: what a minimum-area rectangle of the camera's mask would give."""

    frequencies_hz: tuple[float, ...]
    label: np.ndarray
    resp: np.ndarray
    lam: np.ndarray
    box: np.ndarray
    area: np.ndarray
    wire: np.ndarray
    oriented: np.ndarray


def _area_perimeter_mm(shape: Shape) -> tuple[float, float]:
    """The shape's area (mm2: polygons by the shoelace formula, a wire's line x its
    thickness) and perimeter (mm)."""
    area, perim = 0.0, 0.0
    for poly in shape.polygons:
        x, y = poly[:, 0], poly[:, 1]
        area += 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        perim += float(np.hypot(*(poly - np.roll(poly, -1, axis=0)).T).sum())
    for line, thick in shape.lines:
        length = float(np.hypot(*np.diff(line, axis=0).T).sum())
        area += length * thick
        perim += 2 * (length + thick)
    return area, perim


def _outline(shape: Shape) -> np.ndarray:
    """(M, 2) local mm points bounding the shape (a wire's line grown by its radius)."""
    pts = [p for p in shape.polygons]
    for line, thick in shape.lines:
        for dx, dy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            pts.append(line + 0.5 * thick * np.array([dx, dy]) / math.sqrt(2.0))
    return np.concatenate(pts)


def draw_pieces(
    n_per_class: int,
    frequencies_hz: Sequence[float],
    seed: int,
    edge_sigma_mm: float = 2.0,
    size_median_mm: float = 45.0,
) -> Pieces:
    """Copper and brass pieces drawn as the plant draws them (its feed's log-normal
    size, ``make_shape``, ``material_em`` one frequency pair at a time on the same
    random draws) and their responses x coupling at ``frequencies_hz``."""
    freqs = tuple(float(f) for f in frequencies_hz)
    if n_per_class < 1 or not freqs or any(f <= 0 for f in freqs):
        raise ValueError(
            f"draw_pieces: n_per_class {n_per_class} >= 1 and frequencies {freqs} > 0 needed"
        )
    rng = np.random.default_rng(seed)
    labels, resps, lams, boxes, areas, wires, oriented = [], [], [], [], [], [], []
    for label, name in enumerate(("copper", "brass")):
        for _ in range(n_per_class):
            size = float(np.clip(size_median_mm * math.exp(rng.normal(0, 0.55)), 10.0, 150.0))
            shape = make_shape(rng, name, size)
            key = int(rng.integers(0, 2**62))
            row: list[complex] = []
            for f in freqs:  # the plant's bar holds at most two frequencies: one at a time
                em = material_em(
                    InductionBar(frequencies_hz=(f,)),
                    name,
                    shape.kind,
                    shape.length_mm,
                    shape.width_mm,
                    np.random.default_rng(key),
                )
                row.append(em.responses[0] * em.coupling)
            a_mm = max(min(shape.length_mm, shape.width_mm) / 2.0, 0.5)
            lams.append(math.hypot(1e3 / 15.0, _J1_ZERO * 1e3 / a_mm))
            ang = rng.uniform(0, 2 * math.pi)
            c, s = math.cos(ang), math.sin(ang)
            pts = _outline(shape) @ np.array([[c, s], [-s, c]])
            ext = pts.max(axis=0) - pts.min(axis=0)
            ext = np.maximum(ext + rng.normal(0, edge_sigma_mm * math.sqrt(2.0), 2), 1.0)
            boxes.append(np.sort(ext))
            own = np.ptp(_outline(shape), axis=0)
            own = np.maximum(own + rng.normal(0, edge_sigma_mm * math.sqrt(2.0), 2), 1.0)
            oriented.append(np.sort(own))
            area, perim = _area_perimeter_mm(shape)
            areas.append(max(area + perim * rng.normal(0, edge_sigma_mm), 1.0))
            labels.append(label)
            wires.append(shape.kind == "wire")
            resps.append(row)
    return Pieces(
        freqs,
        np.asarray(labels, np.int64),
        np.asarray(resps, np.complex128),
        np.asarray(lams),
        np.asarray(boxes),
        np.asarray(areas),
        np.asarray(wires, bool),
        np.asarray(oriented),
    )


def bar_features(
    pieces: Pieces, cols: Sequence[int], noise_units: float, gain: float, seed: int
) -> np.ndarray:
    """(n, d) what the bar reads at frequency columns ``cols`` (first: the reference):
    per frequency the phase as a unit vector, per further frequency the log
    amplitude ratio, and the log amplitude (the coupling of its height unknown),
    after complex noise of ``noise_units`` per amplitude."""
    rng = np.random.default_rng(seed)
    z = gain * pieces.resp[:, list(cols)]
    if noise_units > 0:
        z = z + noise_units * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))
    mag = np.abs(z) + 1e-9
    out = [np.real(z) / mag, np.imag(z) / mag, np.log(mag[:, :1])]
    if z.shape[1] > 1:
        out.append(np.log(mag[:, 1:] / mag[:, :1]))
    return np.concatenate(out, axis=1)


def knn_accuracy(x: np.ndarray, y: np.ndarray, k: int = 15, test_share: float = 0.25) -> float:
    """Held-out accuracy of a k-nearest-neighbour vote on standardised ``x`` (the
    first ``test_share`` of a fixed shuffle is the test set)."""
    wrong = knn_wrong(x, y, k, test_share)
    return 1.0 - float(wrong.sum()) / _test_rows(x.shape[0], test_share).shape[0]


def _test_rows(n: int, test_share: float) -> np.ndarray:
    """The test rows of ``knn_wrong``: the first share of a fixed shuffle."""
    return np.random.default_rng(0).permutation(n)[: max(int(test_share * n), 1)]


def knn_wrong(x: np.ndarray, y: np.ndarray, k: int = 15, test_share: float = 0.25) -> np.ndarray:
    """(n,) bool: test samples (``knn_accuracy``) the vote gets wrong."""
    if x.shape[0] != y.shape[0] or x.shape[0] < 4:
        raise ValueError(f"knn_accuracy: {x.shape[0]} samples for {y.shape[0]} labels")
    order = np.random.default_rng(0).permutation(x.shape[0])
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)
    n_test = max(int(test_share * x.shape[0]), 1)
    te, tr = order[:n_test], order[n_test:]
    wrong = np.zeros(x.shape[0], bool)
    for lo in range(0, n_test, 512):
        q = x[te[lo : lo + 512]]
        d = (q * q).sum(1)[:, None] - 2 * q @ x[tr].T + (x[tr] * x[tr]).sum(1)[None, :]
        near = np.argpartition(d, k, axis=1)[:, :k]
        vote = y[tr][near].mean(axis=1) > 0.5
        wrong[te[lo : lo + 512]] = vote != y[te[lo : lo + 512]].astype(bool)
    return wrong


def mlp_accuracy(
    x: np.ndarray, y: np.ndarray, test_share: float = 0.25, epochs: int = 1500
) -> float:
    """Held-out accuracy (the test rows of ``knn_wrong``) of a small perceptron (64, 64
    ReLU units, Adam, ``epochs`` full-batch epochs, seed 0): a cross-check of the vote."""
    import torch

    test = np.zeros(x.shape[0], bool)
    test[_test_rows(x.shape[0], test_share)] = True
    x = (x - x[~test].mean(axis=0)) / (x[~test].std(axis=0) + 1e-12)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    tr = torch.tensor(~test)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: one thread is faster on a shared machine
    try:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
            torch.nn.ReLU(), torch.nn.Linear(64, 1),
        )  # fmt: skip
        opt = torch.optim.Adam(net.parameters(), 3e-3)
        for _ in range(epochs):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                net(xt[tr]).squeeze(1), yt[tr]
            )
            loss.backward()
            opt.step()
        with torch.no_grad():
            pred = net(xt[~tr]).squeeze(1) > 0
    finally:
        torch.set_num_threads(threads)
    return float((pred.float() == yt[~tr]).float().mean())


def study(
    n_per_class: int = 6000,
    candidates_hz: Sequence[float] = CANDIDATES_HZ,
    noise_units: float = 1.0,
    seed: int = 3001,
    mlp: bool = False,
) -> dict[str, Any]:
    """Copper/brass 2-way accuracy of the bar (+ the camera's box) per frequency set."""
    freqs = (*BASE_HZ, *candidates_hz)
    p = draw_pieces(n_per_class, freqs, seed)
    box = np.log(p.box)
    out_box_alone = knn_accuracy(np.concatenate([box, np.log(p.area)[:, None]], axis=1), p.label)
    out: dict[str, Any] = {
        "pieces_per_class": n_per_class,
        "seed": seed,
        "noise_units_per_amplitude": noise_units,
        "gain": 1000.0,
        "sigma_s_m": {k: list(ELECTRICAL[k].sigma_s_m) for k in ("copper", "brass")},
        "thick_mm": {k: list(ELECTRICAL[k].thick_mm) for k in ("copper", "brass")},
        "skin_depth_mm": {
            name: {
                f"{f:g}": round(1e3 / math.sqrt(math.pi * f * MU0 * float(np.mean(sig))), 3)
                for f in freqs
            }
            for name, sig in (
                ("copper", ELECTRICAL["copper"].sigma_s_m),
                ("brass", ELECTRICAL["brass"].sigma_s_m),
            )
        },
        "box_and_area_alone": out_box_alone,
        "sets": [],
    }
    sets = [BASE_HZ] + [(*BASE_HZ, f) for f in candidates_hz]
    for fs in sets:
        cols = [freqs.index(f) for f in fs]
        bar = bar_features(p, cols, noise_units, 1000.0, seed + 1)
        row = {
            "frequencies_hz": list(fs),
            "bar_alone": knn_accuracy(bar, p.label),
            "bar_and_box": knn_accuracy(np.concatenate([bar, box], axis=1), p.label),
            "bar_box_and_area": knn_accuracy(
                np.concatenate([bar, box, np.log(p.area)[:, None]], axis=1), p.label
            ),
            "bar_and_oriented_box": knn_accuracy(
                np.concatenate([bar, np.log(p.oriented)], axis=1), p.label
            ),
            "bar_and_true_lambda": knn_accuracy(
                np.concatenate([bar, np.log(p.lam)[:, None]], axis=1), p.label
            ),
        }
        if mlp:
            row["bar_and_box_mlp"] = mlp_accuracy(np.concatenate([bar, box], axis=1), p.label)
        out["sets"].append(row)
    bar = bar_features(p, [0, 1], noise_units, 1000.0, seed + 1)
    wrong = knn_wrong(np.concatenate([bar, box], axis=1), p.label)
    out["errors_5k_50k_with_box"] = {
        "copper_wire": int((wrong & p.wire).sum()),
        "copper_plate": int((wrong & ~p.wire & (p.label == 0)).sum()),
        "brass": int((wrong & (p.label == 1)).sum()),
        "test_pieces": int(_test_rows(p.label.shape[0], 0.25).shape[0]),
        "test_copper_wires": int(p.wire[_test_rows(p.label.shape[0], 0.25)].sum()),
    }
    # the phase at one frequency alone (the brief's "skin depth near the thickness")
    out["phase_alone"] = []
    for f in freqs:
        bar = bar_features(p, [freqs.index(f)], noise_units, 1000.0, seed + 1)[:, :2]
        out["phase_alone"].append({"frequency_hz": f, "bar_alone": knn_accuracy(bar, p.label)})
    return out


def check_identity(frequencies_hz: Sequence[float] = (500.0, 5000.0, 50000.0, 500000.0)) -> float:
    """Largest |R_copper - R_brass twin| over a grid of plant pieces and frequencies."""
    worst = 0.0
    for t in (0.5, 1.0, 1.5):
        for a_mm in (5.0, 10.0, 20.0):
            lam = math.hypot(1e3 / 15.0, _J1_ZERO * 1e3 / a_mm)
            t2, lam2 = degenerate_twin(5.8e7, t, lam, 1.55e7)
            for f in frequencies_hz:
                r1 = layer_response(5.8e7, 1.0, t, lam, f)
                r2 = layer_response(1.55e7, 1.0, t2, lam2, f)
                worst = max(worst, abs(r1 - r2))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sortline.sensor.frequency_study")
    ap.add_argument("--pieces", type=int, default=6000, help="per class")
    ap.add_argument("--noise-units", type=float, default=1.0)
    ap.add_argument("--seed", default="3001,3002", help="seed(s), comma-separated")
    ap.add_argument(
        "--candidates-hz", default=",".join(f"{f:g}" for f in CANDIDATES_HZ),
        help="third frequencies to try, comma-separated",
    )  # fmt: skip
    ap.add_argument("--mlp", action="store_true", help="also a small perceptron (torch)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    try:
        seeds = [int(x) for x in a.seed.split(",")]
        cands = [float(x) for x in a.candidates_hz.split(",")]
    except ValueError:
        ap.error(
            f"--seed {a.seed!r} / --candidates-hz {a.candidates_hz!r}: comma-separated numbers"
        )
    res = {
        "identity_max_abs_difference": check_identity(),
        "runs": [study(a.pieces, cands, a.noise_units, s, a.mlp) for s in seeds],
    }
    text = json.dumps(res, indent=1)
    if a.json is not None:
        a.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
