"""The fusion kernels' twin tests once more with ``NUMBA_DISABLE_JIT=1`` (their Python
bodies run, unsigned offsets and all: coverage and tracebacks see inside them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

NoJit = Callable[..., str]  # the root conftest's ``without_jit`` fixture

HERE = Path(__file__).resolve().parent


def test_fusion_kernel_tests_pass_without_jit(without_jit: NoJit) -> None:
    files = [HERE / "test_fusion_kernel.py", HERE.parent / "sensor" / "test_fusion.py",
             HERE.parent / "sensor" / "test_decompose.py"]  # fmt: skip
    select = "as_before or slow_twin or slow_path or split_shared or inactive or as_alone"
    out = without_jit(files, select, 600)
    assert " skipped" not in out, out[-3000:]
