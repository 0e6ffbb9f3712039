"""What could a perfect classifier reach on this renderer? (``sortline bench model_ceiling``)

Two measurements for the hard pairs (aluminium/stainless, copper/brass), both
from the virtual plant and neither touching the renderer:

- ``crops``: camera-free scenes (``sortline.training_data.camera_free``: no
  noise, blur, uneven light, lens dirt, belt wear, shadows or touching
  fragments) cut into the runtime's crops; Gaussian classifiers (LDA, QDA) on
  ideal per-fragment features: robust colour-ratio percentiles (B/R, G/R),
  mean colour against the belt, gradient structure tensor of the high-passed
  brightness (brushing). Train seeds < 10,000, test on held-out preset seeds.
- ``textures``: the material texture function itself (``sim.plant.materials``), in
  the fragment's own frame before rotation and blur, at each preset's oxidation
  and dirt: colour-ratio and brushing-streak features, QDA.

``--quick`` runs a tiny version (proves the script works).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench._common import emit_json

PAIRS = (("aluminium", "stainless"), ("copper", "brass"))
LEVELS = {"easy": (0.15, 0.1), "default": (0.3, 0.3), "dirty": (0.8, 0.8)}  # oxidation, dirt


def _crop_features(crops: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, F) float64 features of the fragment in each crop."""
    out = []
    for im in crops.astype(np.float32):
        belt = np.median(np.concatenate([im[0], im[-1], im[:, 0], im[:, -1]]), axis=0)
        mask = (np.abs(im - belt).sum(-1) > 40).astype(np.uint8)
        inner = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
        m = mask > 0 if not inner.any() else inner
        if not m.any():
            m = np.ones(mask.shape, bool)
        px = im[m]
        br = px[:, 0] / np.maximum(px[:, 2], 1)
        gr = px[:, 1] / np.maximum(px[:, 2], 1)
        lum = im.mean(-1)
        hp = lum - cv2.GaussianBlur(lum, (0, 0), 2.0)
        gx = cv2.Sobel(hp, cv2.CV_32F, 1, 0, ksize=3)[m]
        gy = cv2.Sobel(hp, cv2.CV_32F, 0, 1, ksize=3)[m]
        jxx, jyy, jxy = (gx * gx).mean(), (gy * gy).mean(), (gx * gy).mean()
        tr = jxx + jyy + 1e-6
        disc = np.sqrt(max(tr**2 / 4 - (jxx * jyy - jxy**2), 0.0))
        mean = px.mean(0)
        out.append(
            [
                *np.percentile(br, (25, 50, 75)),
                *np.percentile(gr, (25, 50, 75)),
                *mean,
                *(mean / np.maximum(belt, 1)),
                np.log(tr),
                2 * disc / tr,
                np.log(hp[m].std() + 0.001),
            ]
        )
    return np.asarray(out, np.float64)


def _texture_features(tex: np.ndarray) -> np.ndarray:
    """Features of a texture in its own frame (brushing along rows)."""
    c = np.clip(tex, 0, 255).astype(np.float32)
    lum = c.mean(-1)
    br = c[..., 0] / np.maximum(c[..., 2], 1)
    gr = c[..., 1] / np.maximum(c[..., 2], 1)
    rows, cols = lum.mean(1), lum.mean(0)
    hp_r = rows - cv2.GaussianBlur(rows.reshape(-1, 1), (0, 0), 3).ravel()
    hp_c = cols - cv2.GaussianBlur(cols.reshape(1, -1), (0, 0), 3).ravel()
    return np.array(
        [
            *np.percentile(br, (25, 50, 75)),
            *np.percentile(gr, (25, 50, 75)),
            np.log(hp_r.std() / rows.mean() + 1e-06),
            np.log(hp_c.std() / rows.mean() + 1e-06),
            lum.mean(),
            (lum >= 250).mean(),
            np.percentile(lum, 95) / max(np.median(lum), 1),
        ]
    )


def _standardise(tr: np.ndarray, te: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = tr.mean(0), tr.std(0) + 1e-9
    return (tr - mu) / sd, (te - mu) / sd


def _qda(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray) -> np.ndarray:
    scores = []
    for k in (0, 1):
        a = xtr[ytr == k]
        cov = np.cov(a.T) + 1e-3 * np.eye(a.shape[1])
        d = xte - a.mean(0)
        inv = np.linalg.inv(cov)
        scores.append(-0.5 * np.einsum("ij,jk,ik->i", d, inv, d) - 0.5 * np.linalg.slogdet(cov)[1])
    return np.argmax(np.stack(scores, 1), 1)


def _lda(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray) -> np.ndarray:
    m0, m1 = xtr[ytr == 0].mean(0), xtr[ytr == 1].mean(0)
    resid = np.vstack([xtr[ytr == 0] - m0, xtr[ytr == 1] - m1])
    w = np.linalg.solve(np.cov(resid.T) + 1e-3 * np.eye(xtr.shape[1]), m1 - m0)
    return (xte @ w - w @ (m0 + m1) / 2 > 0).astype(int)


def crops_ceiling(n_train: int, per_preset: int, frames: int) -> dict[str, Any]:
    """Camera-free crops: feature classifiers' accuracy within each hard pair."""
    from sim.plant.scenario import load_scenario
    from sortline.training_data import (
        EVAL_SEED_BASE,
        TRAIN_CLASSES,
        SceneSpec,
        camera_free,
        random_training_scenario,
        render_crops,
    )

    rng = np.random.default_rng(77)
    train = [
        SceneSpec(camera_free(random_training_scenario(rng, 7000 + i)), 7000 + i, frames)
        for i in range(n_train)
    ]
    presets = ("easy", "default", "crowded", "fast", "dirty")
    test = [
        SceneSpec(camera_free(load_scenario(p)), EVAL_SEED_BASE + 100 * i + k, frames)
        for i, p in enumerate(presets)
        for k in range(per_preset)
    ]
    tr, te = render_crops(train), render_crops(test)
    out: dict[str, Any] = {"train_crops": len(tr), "test_crops": len(te)}
    for a, b in PAIRS:
        ia, ib = TRAIN_CLASSES.index(a), TRAIN_CLASSES.index(b)
        mtr, mte = np.isin(tr.labels, [ia, ib]), np.isin(te.labels, [ia, ib])
        xtr, xte = _standardise(_crop_features(tr.crops[mtr]), _crop_features(te.crops[mte]))
        ytr, yte = (tr.labels[mtr] == ib).astype(int), (te.labels[mte] == ib).astype(int)
        colour = slice(0, 12)
        out[f"{a}/{b}"] = {
            "test_crops": int(mte.sum()),
            "lda_all": float((_lda(xtr, ytr, xte) == yte).mean()),
            "qda_all": float((_qda(xtr, ytr, xte) == yte).mean()),
            "lda_colour": float((_lda(xtr[:, colour], ytr, xte[:, colour]) == yte).mean()),
            "lda_texture": float((_lda(xtr[:, 12:], ytr, xte[:, 12:]) == yte).mean()),
        }
    return out


def textures_ceiling(n_train: int, n_test: int, seed: int = 5) -> dict[str, Any]:
    """The texture function itself, before the camera: QDA within each pair."""
    from sim.plant.materials import _metal

    rng = np.random.default_rng(seed)

    def sample(name: str, n: int, ox: float | None, dirt: float | None) -> np.ndarray:
        rows = []
        for _ in range(n):
            h, w = int(rng.integers(40, 80)), int(rng.integers(40, 80))
            o = rng.uniform(0.1, 0.9) if ox is None else ox
            d = rng.uniform(0.05, 0.9) if dirt is None else dirt
            rows.append(_texture_features(_metal(rng, name, h, w, o, d)))
        return np.asarray(rows)

    out: dict[str, Any] = {}
    for a, b in PAIRS:
        xtr = np.vstack([sample(a, n_train, None, None), sample(b, n_train, None, None)])
        ytr = np.r_[np.zeros(n_train), np.ones(n_train)].astype(int)
        res = {}
        for level, (ox, dirt) in LEVELS.items():
            xte = np.vstack([sample(a, n_test, ox, dirt), sample(b, n_test, ox, dirt)])
            yte = np.r_[np.zeros(n_test), np.ones(n_test)].astype(int)
            s_tr, s_te = _standardise(xtr, xte)
            res[level] = {
                "all": float((_qda(s_tr, ytr, s_te) == yte).mean()),
                "colour": float((_qda(s_tr[:, :6], ytr, s_te[:, :6]) == yte).mean()),
                "streak_specular": float((_qda(s_tr[:, 6:], ytr, s_te[:, 6:]) == yte).mean()),
            }
        out[f"{a}/{b}"] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sortline bench model_ceiling", description=__doc__)
    ap.add_argument("--train-scenes", type=int, default=40)
    ap.add_argument("--test-scenes", type=int, default=2, help="per preset")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--textures", type=int, default=1500, help="training textures per class")
    ap.add_argument("--quick", action="store_true", help="tiny run: proves the script works")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.quick:
        a.train_scenes, a.test_scenes, a.frames, a.textures = 2, 1, 12, 40
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "command": "sortline bench model_ceiling " + " ".join(argv or sys.argv[1:]),
        "crops": crops_ceiling(a.train_scenes, a.test_scenes, a.frames),
        "textures": textures_ceiling(a.textures, max(a.textures // 3, 20)),
    }
    result["seconds"] = time.perf_counter() - t0
    emit_json(result, a.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
