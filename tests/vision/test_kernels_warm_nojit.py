"""The warm split's kernels (``vision.kernels_warm``) once more with
``NUMBA_DISABLE_JIT=1`` (their Python bodies run against the same twins)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
NoJit = Callable[..., str]  # the root conftest's ``without_jit`` fixture


def test_warm_kernels_pass_without_jit(without_jit: NoJit) -> None:
    """``_warm_counts`` and ``_warm_seeds`` as plain Python against their NumPy and
    OpenCV twins (``tests/vision/test_split_warm.py``)."""
    select = "numpy_twin or (opencv_twin and not scenes)"  # the scenes: ~20 s as Python
    out = without_jit([HERE / "test_split_warm.py"], select, 400)
    assert "2 passed" in out, out[-3000:]
