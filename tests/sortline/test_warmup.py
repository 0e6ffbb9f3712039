"""Kernel warm-up: every hot kernel of vision and control is compiled (or loaded
from cache) by throw-away parts before a wall-clock line starts; the line's
own belt model, tracks and counters are untouched."""

from __future__ import annotations

import numpy as np
from numba.core.registry import CPUDispatcher

import control.kernels
import control.kernels_evidence
import control.kernels_intervals
import control.kernels_schedule
import vision.kernels
import vision.kernels_split
from sortline.config import load_config
from sortline.parts import build_parts
from sortline.warmup import warm_up

# the kernels the real-time loop calls from Python; the rest are compiled into them
ENTRY_KERNELS = [
    control.kernels._track_step,
    control.kernels_evidence._outlook_rows,
    control.kernels_evidence._outlook_logits,
    control.kernels_evidence._outlook_finish,
    control.kernels_evidence._export,
    control.kernels_schedule._schedule,
    control.kernels_intervals._pulse_columns,
    vision.kernels._gain,
    vision.kernels._belt_pass,  # calls _diff_fg and _update row by row
    vision.kernels._crops,
    vision.kernels._label_stats,
    vision.kernels._box_moments,
    vision.kernels._solidity,
    vision.kernels_split._label_max,
    vision.kernels_split._comp_mask,
    vision.kernels_split._shape_split,
    vision.kernels_split._notch_cut,
    vision.kernels_split._fill_ridges,
    vision.kernels_split._write_pieces,
]


def test_warm_up_reaches_every_stage_and_leaves_the_line_alone():
    cfg = load_config()
    parts = build_parts(cfg, plc_port=0, stepped=True)
    try:
        belt_before = parts.vision.segmenter.belt.__dict__.copy()
        done = warm_up(
            parts.geometry, parts.classifier, parts.recipe, parts.class_names,
            cfg.control.deadline_margin_ms, parts.vision.camera_model,
        )  # fmt: skip
        assert done.detections > 0 and done.pulses > 0 and done.seconds > 0
        if isinstance(control.kernels._track_step, CPUDispatcher):  # not under NUMBA_DISABLE_JIT
            cold = [k.py_func.__qualname__ for k in ENTRY_KERNELS if not k.signatures]
            assert not cold, f"not compiled by the warm-up: {cold}"
        assert set(parts.controller.stats().values()) == {0}
        belt_after = parts.vision.segmenter.belt.__dict__
        for name, value in belt_before.items():
            same = (
                np.array_equal(value, belt_after[name])
                if isinstance(value, np.ndarray)
                else value == belt_after[name]
            )
            assert same, f"warm-up changed the line's belt model ({name})"
    finally:
        parts.close()


def test_warm_up_runs_the_lines_own_instance_cue_once(tmp_path):
    """With ``segmenter = "learned"`` the line's own ONNX session of the cue runs once
    on a whole empty low-resolution frame (its first run and its largest input, off
    the loop), and keeps no cores for the line's first frame to reuse."""
    p = tmp_path / "line.toml"
    p.write_text(f'[vision]\nsegmenter = "learned"\n[recipes]\ndir = "{tmp_path / "r"}"\n')
    cfg = load_config(p)
    parts = build_parts(cfg, plc_port=0, stepped=True)
    try:
        seg = parts.vision.segmenter
        cue = seg.cue
        assert cue is not None
        shapes = []
        real = cue.predict_core

        def counted(small, belt, fg):
            shapes.append(fg.shape)
            return real(small, belt, fg)

        cue.predict_core = counted
        warm_up(
            parts.geometry, parts.classifier, parts.recipe, parts.class_names,
            cfg.control.deadline_margin_ms, parts.vision.camera_model,
            parts.controller.params, seg,
        )  # fmt: skip
        cam = cfg.camera
        s = seg.params.scale
        assert shapes == [(cam.height_px // s, cam.width_px // s)]
        assert len(cue.memory.cores) == 0 and seg.belt.mean is None
    finally:
        parts.close()
