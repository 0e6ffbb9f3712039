"""Re-run the learned split's kernel twin tests with ``NUMBA_DISABLE_JIT=1`` (the
kernels' Python bodies run, so coverage and tracebacks see inside them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_learned_kernel_tests_pass_without_jit() -> None:
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         str(HERE / "test_learned_kernels.py"), "-k", "not compiles"],
        cwd=HERE.parent.parent, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.split("\n")[-2], tail
