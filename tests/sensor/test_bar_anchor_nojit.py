"""The bar-anchor kernel's twin tests again with ``NUMBA_DISABLE_JIT=1`` (its
Python body runs: coverage and tracebacks see inside it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

NoJit = Callable[..., str]  # the root conftest's ``without_jit`` fixture

HERE = Path(__file__).resolve().parent


def test_anchor_kernel_tests_pass_without_jit(without_jit: NoJit) -> None:
    out = without_jit([HERE / "test_bar_anchor.py"], "twin or by_hand", 240)
    assert "4 passed" in out, out[-3000:]
