"""``core.numba_cache``: an edit of a callee's file reaches its cached caller."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from core.numba_cache import purge_stale_kernel_caches

_CALLEE = """
from numba import njit

@njit(cache=True)
def _value():
    return {value}
"""
_CALLER = """
from numba import njit
from kpkg.kernels_callee import _value

@njit(cache=True)
def _twice():
    return 2 * _value()
"""
_RUN = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from core.numba_cache import purge_stale_kernel_caches
if {purge}:
    purge_stale_kernel_caches(Path({pkg!r}))
from kpkg.kernels_caller import _twice
print(_twice())
"""


def _package(tmp_path: Path, value: int) -> Path:
    pkg = tmp_path / "kpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kernels_callee.py").write_text(_CALLEE.format(value=value))
    (pkg / "kernels_caller.py").write_text(_CALLER)
    return pkg


def _run(tmp_path: Path, pkg: Path, purge: bool) -> int:
    root = str(Path(__file__).resolve().parents[2])
    code = _RUN.format(root=root, purge=purge, pkg=str(pkg))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{root}"}
    env.pop("NUMBA_DISABLE_JIT", None)
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return int(out.stdout.strip().splitlines()[-1])


def _edit_callee(pkg: Path, value: int) -> None:
    time.sleep(0.05)  # a new mtime even on coarse-grained file systems
    callee = pkg / "kernels_callee.py"
    callee.write_text(_CALLEE.format(value=value))
    later = time.time() + 1.0
    os.utime(callee, (later, later))


def test_callee_edit_reaches_cached_caller(tmp_path):
    pkg = _package(tmp_path, 3)
    assert _run(tmp_path, pkg, purge=True) == 6
    assert list((pkg / "__pycache__").glob("*.nbi")), (
        "numba wrote no cache: the test proves nothing"
    )
    _edit_callee(pkg, 5)
    assert _run(tmp_path, pkg, purge=True) == 10


def test_purge_keeps_fresh_caches_and_counts(tmp_path):
    pkg = _package(tmp_path, 3)
    assert _run(tmp_path, pkg, purge=False) == 6
    n_cache = len([p for p in (pkg / "__pycache__").iterdir() if p.suffix in (".nbi", ".nbc")])
    assert n_cache >= 2
    assert purge_stale_kernel_caches(pkg) == 0  # nothing is older than the sources
    _edit_callee(pkg, 4)
    assert purge_stale_kernel_caches(pkg) == n_cache
    assert not [p for p in (pkg / "__pycache__").iterdir() if p.suffix in (".nbi", ".nbc")]
    assert _run(tmp_path, pkg, purge=False) == 8


def test_purge_without_sources_or_cache(tmp_path):
    assert purge_stale_kernel_caches(tmp_path / "missing") == 0
    (tmp_path / "kernels_x.py").write_text("")
    assert purge_stale_kernel_caches(tmp_path) == 0  # no __pycache__ yet
