"""Re-run the learned split's kernel twin tests with ``NUMBA_DISABLE_JIT=1`` (the
kernels' Python bodies run, so coverage and tracebacks see inside them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

NoJit = Callable[..., str]  # the root conftest's ``without_jit`` fixture

HERE = Path(__file__).resolve().parent


def test_learned_kernel_tests_pass_without_jit(without_jit: NoJit) -> None:
    out = without_jit([HERE / "test_learned_kernels.py"], "not compiles", 240)
    assert "skipped" not in out.split("\n")[-2], out[-3000:]
