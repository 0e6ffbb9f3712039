# mypy: disallow-untyped-defs=False
"""Numba kernel of the crop planner's frame-to-frame association (``vision.track_crops``).

Private: ``CropPlanner._associate`` prepares its input. Its twin (the NumPy
distance matrix it replaced) lives in ``tests/vision/test_track_crops_kernel.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def _mutual_nearest(cx, cy, mx, my):
    """Nearest neighbours both ways between points (cx, cy) (N,) and (mx, my) (M,),
    float64 mm, by ``np.hypot`` distance (libm's ``hypot``, compiled or not): near (N,)
    int64 nearest of the M to each of the N, back (M,) int64 nearest of the N to
    each of the M, and dist (N,) float64 the distance to ``near``. Ties and NaN as
    ``np.argmin`` on the (N, M) distance matrix: the first minimum, the first NaN."""
    n, m = cx.size, mx.size
    near = np.zeros(n, np.int64)
    back = np.zeros(m, np.int64)
    dist = np.full(n, np.inf)
    col = np.full(m, np.inf)
    for i in range(n):
        for j in range(m):
            d = np.hypot(cx[i] - mx[j], cy[i] - my[j])
            if d < dist[i] or (math.isnan(d) and not math.isnan(dist[i])):
                dist[i] = d
                near[i] = j
            if d < col[j] or (math.isnan(d) and not math.isnan(col[j])):
                col[j] = d
                back[j] = i
    return near, back, dist
