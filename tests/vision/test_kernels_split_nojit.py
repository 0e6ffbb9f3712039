"""The vision kernels' twin tests once more with ``NUMBA_DISABLE_JIT=1`` (their
Python bodies run, so coverage and tracebacks see inside them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
NoJit = Callable[..., str]  # the root conftest's ``without_jit`` fixture


def test_two_means_tests_pass_without_jit(without_jit: NoJit) -> None:
    out = without_jit([HERE / "test_kernels_split.py"], "two_means or two_colours", 240)
    assert "deselected" in out


def test_compiled_split_twins_pass_without_jit(without_jit: NoJit) -> None:
    """The kernels of ``tests/vision/test_cpu_split.py`` (line, 4-connected labels, the
    shape and notch markers), ``test_cpu_segment.py`` (component statistics) and
    ``test_cpu_belt.py`` (the belt model's pass, small images only) as plain Python
    against the same twins."""
    # the rectangle's axes at two of its fifteen poses: each whole segmentation takes
    # ~2.5 s as plain Python, and the kernels' paths are the same at every pose (the
    # JIT run of the suite takes all fifteen)
    select = (
        "(not rectangles_sides_at_any_angle and not belt) or 120.0-40.0-17.0 "
        "or 200.0-24.0-71.0 or dilation_the_twin or (belt_pass and (shape1 or shape2))"
    )
    files = [HERE / n for n in ("test_cpu_split.py", "test_cpu_segment.py", "test_cpu_belt.py")]
    out = without_jit(files, select, 400)
    assert "23 deselected" in out, out[-3000:]


def test_compiled_solidity_twins_pass_without_jit(without_jit: NoJit) -> None:
    """``vision.kernels._solidity`` (the merge flag's hull) as plain Python
    against its OpenCV twin (``tests/vision/test_merge.py``)."""
    out = without_jit([HERE / "test_merge.py"], "compiled_solidity", 240)
    assert "2 passed" in out


def test_warm_share_kernel_passes_without_jit(without_jit: NoJit) -> None:
    """``vision.kernels_merge._warm_shares`` (the merge flag's one-material check)
    as plain Python against its NumPy twin and the hand-drawn scenes
    (``tests/vision/test_merge_material.py``)."""
    out = without_jit([HERE / "test_merge_material.py"], "compiled or lone or share_of", 240)
    assert "3 passed" in out


def test_chroma_count_kernel_passes_without_jit(without_jit: NoJit) -> None:
    """``vision.kernels_split._chroma_counts`` and ``_chroma_seeds`` (the chroma
    split's counts and markers) as plain Python against their NumPy/OpenCV twins
    (``tests/vision/test_split_chroma.py``)."""
    out = without_jit([HERE / "test_split_chroma.py"], "numpy_twin or opencv_twin", 400)
    assert "2 passed" in out


def test_crop_and_association_kernels_pass_without_jit(without_jit: NoJit) -> None:
    """``vision.kernels._crops`` (and ``_soft_mask``) and
    ``vision.kernels_track._mutual_nearest`` as plain Python against their exact
    twins (``test_cpu_crops.py``, ``test_track_crops_kernel.py``)."""
    out = without_jit(
        [HERE / "test_cpu_crops.py", HERE / "test_track_crops_kernel.py"],
        "corners or mutual or (drawn and params1-1)",  # 32 px crops: plain Python is slow
        600,
    )
    assert "passed" in out
