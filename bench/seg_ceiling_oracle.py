"""The learned split with a *perfect* instance cue (issue 15, session 15's ceiling
study): how many touching fragments does the line's learned split
(``vision.learned.split_learned``: core regions seed a marker watershed) still
leave merged when its core map is the plant truth's own?

Runs ``bench.vision.study`` (the same frames, truth and counters as ``sortline
bench vision --study``) with ``tracks`` and two oracle pipelines in which
``vision.segment``'s ``core_map`` is replaced, in this process only, by the
truth's core target (``models.seg_dataset.targets_from_labels`` on the truth's
label image at the segmentation's grid, as the cue was trained on):

- ``tracks_oracle``: that core at the working resolution (1/2 of the camera's);
- ``tracks_oracle_s2``: the same averaged over 2 x 2 blocks and bilinearly
  upsampled x2: the finest a net of seg-v1/v2's output stride can draw.

A seg-v1-shaped file (no material head) stands in for the model so the line's
cue path runs; the net is never called. What this bounds: the line's split
machinery at its working resolution given a perfect 2-D cue; it does not say a
net can learn that cue from the frame.

    python -m bench.seg_ceiling_oracle --seed 3001 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.seg_dataset import targets_from_labels

_PLANT: list[Any] = []  # the plant last stepped (the study steps one)


def _truth_core(fg_shape: tuple[int, int], scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) float32 truth core 0..1 and bool contact at the segmentation's grid."""
    lab = _PLANT[-1].visible_truth().label_image()[scale // 2 :: scale, scale // 2 :: scale]
    h, w = fg_shape
    full = np.full((h, w), -1, np.int64)
    full[: min(h, lab.shape[0]), : min(w, lab.shape[1])] = lab[:h, :w]
    core, contact = targets_from_labels(full)
    return core.astype(np.float32) / np.float32(255.0), contact > 0


def _block2(core: np.ndarray) -> np.ndarray:
    """Averaged over 2 x 2 blocks and bilinearly upsampled back (seg-v1/v2's stride)."""
    h, w = core.shape
    ph, pw = h + (h & 1), w + (w & 1)
    pad = np.pad(core.astype(np.float32), ((0, ph - h), (0, pw - w)), mode="edge")
    low = pad.reshape(ph // 2, 2, pw // 2, 2).mean(axis=(1, 3))
    up = cv2.resize(low, (pw, ph), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(up[:h, :w])


def _patch() -> None:
    import sim.plant.plant as plant_mod
    import vision.segment as seg_mod

    step = plant_mod.VirtualPlant.step
    real_core_map = seg_mod.core_map

    def stepped(self: Any, *a: Any, **k: Any) -> Any:
        _PLANT[:] = [self]
        return step(self, *a, **k)

    def oracle_core_map(cue: Any, small: Any, belt: Any, fg: Any, stats: Any, p: Any) -> Any:
        if not Path(cue.path).name.startswith("oracle"):  # a real cue (--cue)
            return real_core_map(cue, small, belt, fg, stats, p)
        core, contact = _truth_core(fg.shape, int(p.scale))
        if "oracle_s2" in Path(cue.path).name:
            core = _block2(core)
        big = stats[:, cv2.CC_STAT_AREA] * int(p.scale) ** 2 >= p.split_min_area_px
        big[0] = False  # the belt
        out = np.zeros_like(core)
        lab = cv2.connectedComponents(fg, connectivity=8, ltype=cv2.CV_32S)[1]
        keep = big[lab]
        out[keep] = core[keep]
        cue.contact = contact
        return out

    plant_mod.VirtualPlant.step = stepped  # type: ignore[method-assign]
    seg_mod.core_map = oracle_core_map  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.seg_ceiling_oracle", description=__doc__)
    ap.add_argument("--study", default="crowded:0,shred:500")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--model", default="builtin:sortline-cnn", help="the classifier")
    ap.add_argument("--params", default="",
                    help="oracle SegmentParams, e.g. learned_min_seed_px=20")  # fmt: skip
    ap.add_argument("--cue", default="", help="real cue files (comma list) beside the oracle")
    ap.add_argument("--cores", default="", help="learned_core values for --cue (comma list)")
    ap.add_argument("--no-oracle", action="store_true", help="only tracks and --cue")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.seed in (101, 202):
        raise SystemExit("seg_ceiling_oracle: seeds 101 and 202 are held out; use a tuning seed")
    import dataclasses

    from bench.vision import _variants, study
    from models.seg_models import resolve_seg_model

    _patch()
    tmp = Path(tempfile.mkdtemp(prefix="seg_oracle_"))
    v1 = resolve_seg_model("builtin:seg-v1")
    files = {k: tmp / f"{k}.onnx" for k in ("oracle", "oracle_s2")}
    for f in files.values():
        shutil.copyfile(v1, f)
    base = _variants(("tracks", "tracks_learned"), str(v1))
    pol, learned = base["tracks_learned"]
    for kv in filter(None, a.params.split(",")):
        key, val = kv.split("=")
        learned = dataclasses.replace(learned, **{key: type(getattr(learned, key))(val)})
    variants = {"tracks": base["tracks"]}
    for k, f in ({} if a.no_oracle else files).items():
        variants[f"tracks_{k}"] = (pol, dataclasses.replace(learned, learned_model=str(f)))
    for m in filter(None, a.cue.split(",")):
        path = str(resolve_seg_model(m))
        for c in a.cores.split(",") if a.cores else [str(learned.learned_core)]:
            sp = dataclasses.replace(learned, learned_model=path, learned_core=float(c))
            variants[f"tracks_learned[{Path(path).stem}]@{c}"] = (pol, sp)
    t0 = time.time()
    rows = []
    for cell in a.study.split(","):
        name, feed = cell.split(":")
        rows.append(study(name, float(feed), a.frames, a.model, a.seed, variants))
    shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "command": "python -m bench.seg_ceiling_oracle " + " ".join(argv or sys.argv[1:]),
        "note": "tracks_oracle*: the learned split with the plant truth's core map "
        "(no net); vision CPU figures of the oracle rows mean nothing",
        "load_avg_1m_end": round(float(__import__("os").getloadavg()[0]), 2),
        "wall_s": round(time.time() - t0, 1),
        "study": rows,
    }
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
