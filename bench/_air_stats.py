"""Interval estimates for ``bench/air.py``: binomial proportions and paired differences.

- ``wilson``: Wilson score interval of a proportion k / n.
- ``pool_runs``, ``compare``, ``best_baseline``: the per-preset figures of
  ``bench/air.py`` from its runs' per-fragment outcomes.
- ``paired_difference``: difference of two proportions measured on the SAME
  fragments (adaptive vs baseline on one plant seed), with Newcombe's hybrid
  score interval for paired data (Newcombe 1998, Stat. Med. 17:2635, method 10):
  Wilson limits of each proportion combined through the phi correlation of the
  2x2 table of (adaptive caught, baseline caught).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

Z95 = 1.959963984540054
SAVING_GOAL = 0.30


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


def pool_runs(runs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Figures of one configuration pooled over its seeds."""
    frags = {(s, f): (o, why) for s, r in runs.items() for f, o, why in r["fragments"]}
    n = len(frags)
    caught = sum(1 for o, _ in frags.values() if o == "ok")
    covered = sum(1 for o, _ in frags.values() if o in ("ok", "tumbled"))
    ejected = sum(int(r["ejected"] or 0) for r in runs.values())
    air = sum(float(r["air_valve_ms"] or 0.0) for r in runs.values())
    counters: Counter[str] = Counter()
    for r in runs.values():
        counters.update(
            {**r["counters"], "plc_late": r["plc_late"], "plc_refused": r["plc_refused"]}
        )
    return {
        "targeted": n,
        "recovery": caught / n if n else None,
        "recovery_ci95": wilson(caught, n),
        "covered": covered / n if n else None,
        "covered_ci95": wilson(covered, n),
        "ejected": ejected,
        "purity": _weighted(runs, "purity", "ejected"),
        "co_ejection_rate": _weighted(runs, "co_ejection_rate", "ejected"),
        "air_valve_ms": air,
        "valve_ms_per_ejected": air / ejected if ejected else None,
        "not_ejected": dict(Counter(why for o, why in frags.values() if o != "ok")),
        **dict(counters),
        "wall_s": sum(r["wall_s"] for r in runs.values()),
        "_frags": frags,
    }


def _weighted(runs: dict[int, dict[str, Any]], key: str, weight: str) -> float | None:
    w = sum(int(r[weight] or 0) for r in runs.values())
    if not w:
        return None
    return sum(float(r[key] or 0.0) * int(r[weight] or 0) for r in runs.values()) / w


def compare(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Paired comparison over the fragments both runs scored, and the losses."""
    a, b = ours["_frags"], base["_frags"]
    keys = sorted(a.keys() & b.keys())
    caught = paired_difference([a[k][0] == "ok" for k in keys], [b[k][0] == "ok" for k in keys])
    cov = ("ok", "tumbled")
    covered = paired_difference([a[k][0] in cov for k in keys], [b[k][0] in cov for k in keys])
    lost = Counter(a[k][1] for k in keys if b[k][0] in cov and a[k][0] not in cov)
    won = Counter(b[k][1] for k in keys if a[k][0] in cov and b[k][0] not in cov)
    air_o, air_b = ours["valve_ms_per_ejected"], base["valve_ms_per_ejected"]
    saving = (1.0 - air_o / air_b) if air_o and air_b else None
    rec_ok = (ours["recovery"] or 0.0) >= (base["recovery"] or 0.0)
    cov_ok = covered["only_adaptive"] >= covered["only_baseline"]
    saving_ok = saving is not None and saving >= SAVING_GOAL
    return {
        "air_saving": saving,
        "recovery_paired": caught,
        "covered_paired": covered,
        "adaptive_lost_baseline_covered": dict(lost),
        "baseline_lost_adaptive_covered": dict(won),
        "recovery_equal_or_better": rec_ok,
        "covered_equal_or_better": cov_ok,
        # the plant's recovery (incl. tumbling) / what the schedule decides
        "goal_met": bool(saving_ok and rec_ok),
        "goal_met_covered": bool(saving_ok and cov_ok),
    }


def best_baseline(sweep: dict[str, dict[str, Any]]) -> str:
    """The margin with the best covered recovery, then the least air: covered is
    what the margin decides; the plant's recovery adds the tumbling draw, which
    only moves with it through which fragments are covered."""

    def key(name: str) -> tuple[float, float]:
        r = sweep[name]
        return (-(r["covered"] or 0.0), r["valve_ms_per_ejected"] or 1e300)

    return min(sweep, key=key)
