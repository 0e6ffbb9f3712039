"""The bar-anchor kernel's twin tests again with ``NUMBA_DISABLE_JIT=1`` (its
Python body runs: coverage and tracebacks see inside it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_anchor_kernel_tests_pass_without_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(HERE / "test_bar_anchor.py"), "-k", "twin or by_hand"],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert "4 passed" in proc.stdout, tail
