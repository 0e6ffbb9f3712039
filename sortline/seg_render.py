"""Rendering the instance cue's training frames on the virtual plant
(``models.seg_dataset``'s targets from the plant's truth label image).

In the ``sortline`` layer because it drives the plant (``sim``), which the
``models`` layer may not import (``tests/test_layers.py``); ``sortline model
train-seg`` hands ``render_set`` to ``models.seg_train.train_and_export``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.seg_dataset import SegRun, SegSet, material_from_labels, targets_from_labels

__all__ = ["render_run", "render_set"]


def _scenario(run: SegRun) -> Any:
    from sim.plant.scenario import Scenario, load_scenario

    d = load_scenario(run.preset).model_dump()
    d["motion"]["speed_mm_s"] = 1000.0 * run.speed_m_s
    if run.feed_obj_s > 0:
        d["feed"]["rate_obj_s"] = run.feed_obj_s
    return Scenario.model_validate(d)


def render_run(run: SegRun, samples: int, every: int = 4, warm: int = 30) -> SegSet:
    """``samples`` frames of one plant run, one every ``every`` frames after ``warm``."""
    from calibration.geometry import LineGeometry
    from sim.plant.plant import IdlePlc, VirtualPlant
    from vision.segment import Segmenter

    geo = LineGeometry()
    plant = VirtualPlant(geo, _scenario(run), IdlePlc(), seed=run.seed)
    seg = Segmenter()
    s = seg.params.scale
    out: dict[str, list[np.ndarray]] = {
        k: [] for k in ("small", "belt", "fg", "core", "contact", "material")
    }
    for i in range(warm + samples * every):
        frame = plant.step()
        small = seg.downsample(frame.image)
        fg = seg.mask(small)  # the belt model now holds this frame, as in the line
        if i < warm or (i - warm) % every:
            continue
        truth = plant.visible_truth()
        lab = truth.label_image()[s // 2 :: s, s // 2 :: s]
        lab = lab[: fg.shape[0], : fg.shape[1]]  # the truth at the segmentation's grid
        core, contact = targets_from_labels(lab)
        out["small"].append(small)
        out["belt"].append(seg.belt.mean_u8.copy())
        out["fg"].append(fg)
        out["core"].append(core)
        out["contact"].append(contact)
        out["material"].append(material_from_labels(lab, truth.fragment_id, truth.class_id))
    arrays = {k: np.stack(v) for k, v in out.items()}
    return SegSet(**arrays, runs=(run.label(),) * samples)


def render_set(runs: list[SegRun], samples: int, progress: Any = None) -> SegSet:
    """``render_run`` over ``runs``, concatenated."""
    parts = []
    for k, run in enumerate(runs):
        parts.append(render_run(run, samples))
        if progress is not None:
            progress(f"rendered {k + 1}/{len(runs)} {run.label()}")
    return SegSet(
        small=np.concatenate([p.small for p in parts]),
        belt=np.concatenate([p.belt for p in parts]),
        fg=np.concatenate([p.fg for p in parts]),
        core=np.concatenate([p.core for p in parts]),
        contact=np.concatenate([p.contact for p in parts]),
        material=np.concatenate([p.material for p in parts if p.material is not None]),
        runs=tuple(r for p in parts for r in p.runs),
    )
