"""Interval estimates for ``bench/air.py``: binomial proportions and paired differences.

- ``wilson``: Wilson score interval of a proportion k / n.
- ``paired_difference``: difference of two proportions measured on the SAME
  fragments (adaptive vs baseline on one plant seed), with Newcombe's hybrid
  score interval for paired data (Newcombe 1998, Stat. Med. 17:2635, method 10):
  Wilson limits of each proportion combined through the phi correlation of the
  2x2 table of (adaptive caught, baseline caught).
"""

from __future__ import annotations

import math
from typing import Any

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval of k successes in n trials; (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    low = 0.0 if k == 0 else max(0.0, mid - half)
    high = 1.0 if k == n else min(1.0, mid + half)
    return low, high


def paired_difference(a: list[bool], b: list[bool], z: float = Z95) -> dict[str, Any]:
    """p(a) - p(b) over paired outcomes with its 95 % interval (Newcombe method 10).

    a, b: per fragment, caught by the first / second scheduler (same length).
    Returns n, both-caught, only_a, only_b, neither, diff, low, high.
    """
    if len(a) != len(b):
        raise ValueError("paired outcomes need equal lengths")
    n = len(a)
    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    neither = n - both - only_a - only_b
    out: dict[str, Any] = {
        "n": n, "both": both, "only_adaptive": only_a, "only_baseline": only_b,
        "neither": neither,
    }  # fmt: skip
    if n == 0:
        return {**out, "diff": None, "low": None, "high": None}
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(both + only_a, n, z)
    l2, u2 = wilson(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = (both * neither - only_a * only_b) / math.sqrt(margins) if margins > 0 else 0.0
    d = p1 - p2
    dl = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    du = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    return {
        **out,
        "diff": d,
        "low": d - math.sqrt(max(dl, 0.0)),
        "high": d + math.sqrt(max(du, 0.0)),
    }
