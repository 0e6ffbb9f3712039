"""Re-run the kernel twin tests with ``NUMBA_DISABLE_JIT=1`` (the kernels' Python
bodies run, so coverage and tracebacks see inside them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

NoJit = Callable[..., str]  # the root conftest's ``without_jit`` fixture

HERE = Path(__file__).resolve().parent


def test_kernel_tests_pass_without_jit(without_jit: NoJit) -> None:
    names = ("test_kernels.py", "test_cover.py", "test_aim.py", "test_motion.py",
             "test_aim_search.py", "test_track_size.py")  # fmt: skip
    out = without_jit([HERE / n for n in names], "not nojit and not stream", 240)
    assert "skipped" not in out.split("\n")[-2], out[-3000:]
