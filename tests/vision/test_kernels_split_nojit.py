"""The vision kernels' twin tests once more with ``NUMBA_DISABLE_JIT=1`` (their
Python bodies run, so coverage and tracebacks see inside them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _without_jit(files: list[str], select: str | None, timeout_s: float) -> str:
    """Run the test ``files`` (``-k select``) with JIT off; returns pytest's stdout."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    k = ["-k", select] if select else []
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         *(str(HERE / f) for f in files), *k],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "failed" not in proc.stdout, tail
    return proc.stdout


def test_two_means_tests_pass_without_jit() -> None:
    out = _without_jit(["test_kernels_split.py"], "two_means or two_colours", 240)
    assert "deselected" in out


def test_compiled_split_twins_pass_without_jit() -> None:
    """The kernels of ``tests/vision/test_cpu_split.py`` (line, 4-connected labels, the
    shape and notch markers) and ``test_cpu_segment.py`` (component statistics) as
    plain Python against the same twins."""
    _without_jit(["test_cpu_split.py", "test_cpu_segment.py"], None, 400)


def test_compiled_solidity_twins_pass_without_jit() -> None:
    """``vision.kernels._solidity`` (the merge flag's hull) as plain Python
    against its OpenCV twin (``tests/vision/test_merge.py``)."""
    out = _without_jit(["test_merge.py"], "compiled_solidity", 240)
    assert "2 passed" in out


def test_crop_and_association_kernels_pass_without_jit() -> None:
    """``vision.kernels._crops`` (and ``_soft_mask``) and
    ``vision.kernels_track._mutual_nearest`` as plain Python against their exact
    twins (``test_cpu_crops.py``, ``test_track_crops_kernel.py``)."""
    out = _without_jit(
        ["test_cpu_crops.py", "test_track_crops_kernel.py"],
        "corners or mutual or (drawn and params1-1)",  # 32 px crops: plain Python is slow
        600,
    )
    assert "passed" in out
