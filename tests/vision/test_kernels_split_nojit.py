"""The colour-split kernel's twin tests once more with ``NUMBA_DISABLE_JIT=1`` (its
Python body runs, so coverage and tracebacks see inside it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_two_means_tests_pass_without_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(HERE / "test_kernels_split.py"), "-k", "two_means or two_colours"],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "deselected" in proc.stdout, tail


def test_compiled_split_twins_pass_without_jit() -> None:
    """The kernels of ``tests/vision/test_cpu_split.py`` (line, 4-connected labels, the
    shape and notch markers) and ``test_cpu_segment.py`` (component statistics) as
    plain Python against the same twins."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(HERE / "test_cpu_split.py"), str(HERE / "test_cpu_segment.py")],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "failed" not in proc.stdout, tail


def test_compiled_solidity_twins_pass_without_jit() -> None:
    """``vision.kernels._solidity`` (the merge flag's hull) as plain Python
    against its OpenCV twin (``tests/vision/test_merge.py``)."""
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(HERE / "test_merge.py"), "-k", "compiled_solidity"],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert "2 passed" in proc.stdout, tail
