"""The decision core (see control/README.md)."""

from pathlib import Path

from core.numba_cache import purge_stale_kernel_caches

# kernels call kernels of sibling files: drop caches an edit may have made stale
purge_stale_kernel_caches(Path(__file__).parent)
