"""Drop Numba's on-disk kernel caches that may hold code of an edited sibling file.

Numba (``@njit(cache=True)``) checks a cached kernel against the stamp of
its OWN source file only. A kernel that calls a kernel of another file (e.g.
``control.kernels_schedule._schedule`` calls ``control.kernels_windows._valve_air``)
has the callee compiled into it, so after an edit of the callee's file alone
the caller's cache is still taken as valid and runs the old callee. A
package with such kernels calls ``purge_stale_kernel_caches`` when it is
imported (before any kernel runs): every cache file in its ``__pycache__``
older than the newest kernel source is deleted, and Numba compiles afresh
once. Fresh installs have no caches and are not affected; a read-only
install keeps its caches (nothing can be deleted there, nothing edits it).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["purge_stale_kernel_caches"]

_CACHE_SUFFIXES = (".nbi", ".nbc")


def purge_stale_kernel_caches(package_dir: str | Path, pattern: str = "kernels*.py") -> int:
    """Delete ``package_dir/__pycache__`` Numba cache files (``*.nbi``, ``*.nbc``)
    older than the newest source matching ``pattern``; returns how many were
    deleted. Missing folders, and files another process removed first or that
    cannot be deleted, are skipped."""
    folder = Path(package_dir)
    cache_dir = folder / "__pycache__"
    try:
        newest_ns = max((p.stat().st_mtime_ns for p in folder.glob(pattern)), default=None)
        if newest_ns is None:
            return 0
        entries = list(cache_dir.iterdir())
    except OSError:
        return 0
    deleted = 0
    for entry in entries:
        if entry.suffix not in _CACHE_SUFFIXES:
            continue
        try:
            if entry.stat().st_mtime_ns < newest_ns:
                entry.unlink()
                deleted += 1
        except OSError:
            continue
    return deleted
