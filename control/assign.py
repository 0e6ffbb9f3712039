"""Exact assignment, public and checked: the wrappers around ``kernels_assign``."""

from __future__ import annotations

import numpy as np

from control import kernels_assign

__all__ = ["gated_assignment", "min_cost_assignment"]


def min_cost_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment of a finite (R, C) matrix, as SciPy's
    ``linear_sum_assignment``: (rows, cols) int64 of min(R, C) pairs, rows ascending."""
    m = np.asarray(cost, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("cost holds NaN or infinity; gate with a finite cost instead")
    nr, nc = m.shape
    if nr == 0 or nc == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if nr <= nc:
        cols = kernels_assign._lsa_rect(np.ascontiguousarray(m))
        return np.arange(nr, dtype=np.int64), cols
    rows_t = kernels_assign._lsa_rect(np.ascontiguousarray(m.T))
    order = np.argsort(rows_t)
    return rows_t[order], np.arange(nc, dtype=np.int64)[order]


def gated_assignment(
    n_rows: int,
    n_cols: int,
    edge_row: np.ndarray,
    edge_col: np.ndarray,
    edge_cost: np.ndarray,
    gate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact assignment over gated edges, solved per independent group.

    Minimises the matched edge costs plus ``gate / 2`` per unmatched row and
    per unmatched column; equivalently SciPy's optimum on the dense matrix
    whose missing entries cost ``gate``. Edges: (E,) row, column, cost < gate,
    each pair at most once. Returns (row_to_col (R,), col_to_row (C,)) int64,
    -1 where unmatched.
    """
    er = np.ascontiguousarray(edge_row, np.int64)
    ec = np.ascontiguousarray(edge_col, np.int64)
    cost = np.ascontiguousarray(edge_cost, np.float64)
    if not (er.shape == ec.shape == cost.shape) or er.ndim != 1:
        raise ValueError("edge_row, edge_col and edge_cost must be 1-D of one length")
    if n_rows < 0 or n_cols < 0 or not np.isfinite(gate) or gate <= 0:
        raise ValueError("need n_rows, n_cols >= 0 and a finite gate > 0")
    if er.size:
        if er.min() < 0 or er.max() >= n_rows or ec.min() < 0 or ec.max() >= n_cols:
            raise ValueError("edge index outside the matrix")
        if not (np.isfinite(cost).all() and (cost < gate).all()):
            raise ValueError("every edge cost must be finite and below the gate")
        if np.unique(er * n_cols + ec).size != er.size:
            raise ValueError("an edge appears twice")
    return kernels_assign._assign_gated(int(n_rows), int(n_cols), er, ec, cost, float(gate))
