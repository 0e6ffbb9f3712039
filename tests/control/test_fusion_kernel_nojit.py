"""The fusion kernels' twin tests once more with ``NUMBA_DISABLE_JIT=1`` (their Python
bodies run, unsigned offsets and all: coverage and tracebacks see inside them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_fusion_kernel_tests_pass_without_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(HERE / "test_fusion_kernel.py"), str(HERE.parent / "sensor" / "test_fusion.py"),
         str(HERE.parent / "sensor" / "test_decompose.py"),
         "-k", "as_before or slow_twin or slow_path or split_shared or inactive or as_alone"],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and " skipped" not in proc.stdout, tail
