"""``bench/line_coeject.py``: the brief's causes from the diagnosis rows, the
per-target counts and the skip-k>=2 what-if, on hand-built rows; and a short
stepped run whose causes add up."""

from __future__ import annotations

import pytest

from bench import line_coeject as lc


@pytest.mark.parametrize(
    ("cause", "target", "separable", "motion", "expected"),
    [
        ("several_runs", "copper", None, "lying", "merged_windows"),
        ("no_track", "copper", None, "lying", "no_track"),
        ("no_target", None, None, "lying", "no_track"),
        ("target_error", "copper", True, "lying", "target_off"),
        ("unavoidable", "copper", None, "lying", "inseparable"),
        ("neighbour_error", "copper", True, "bouncing", "moved"),
        ("neighbour_error", "copper", True, "lying", "criterion"),
        ("seen_accepted", "battery", True, "lying", "battery"),
        ("seen_accepted", "copper", False, "lying", "accepted_no_window"),
        ("seen_accepted", "brass", True, "rolling", "accepted_window"),
        ("criterion", "copper", True, "lying", "criterion"),
    ],
)
def test_brief_cause(cause, target, separable, motion, expected):
    row = {"cause": cause, "target_class": target, "separable_with_margin": separable}
    assert lc.brief_cause(row, motion) == expected


def _row(fragment, target, target_class="copper", cause="seen_accepted"):
    return {
        "fragment": fragment, "target_fragment": target, "target_class": target_class,
        "cause": cause, "separable_with_margin": True,
    }  # fmt: skip


def test_summary_counts_targets_by_k_and_the_skip_what_if():
    rows = [
        _row(10, 1),
        _row(11, 1),  # one copper took two
        _row(12, 2),  # one took one
        _row(13, 3, "battery"),
        _row(14, 3, "battery"),  # a battery took two: never left
        _row(15, 4, cause="several_runs"),  # merged windows: no single target
    ]
    # 20 targets, 18 of them ejected, 24 ejected in all (6 non-targets)
    s = lc.summarise(rows, {12: "sliding"}, 20, 18, 24)
    assert s["causes_brief"]["accepted_window"] == 3
    assert s["causes_brief"]["battery"] == 2 and s["causes_brief"]["merged_windows"] == 1
    assert s["moving_neighbours"] == 1
    assert s["targets_by_k"] == {"1": 1, "2": 2}
    k2 = s["skip_k2"]
    assert (k2["targets_left"], k2["non_targets_saved"]) == (1, 2)
    assert k2["purity"] == pytest.approx(17 / 21, abs=1e-4)
    assert k2["recovery"] == pytest.approx(17 / 20, abs=1e-4)


@pytest.mark.slow
def test_a_short_run_adds_up():
    res = lc.run("crowded", 150, 3001, None)
    assert sum(res["causes_brief"].values()) == res["non_targets_ejected"]
    assert sum(res["causes"].values()) == res["non_targets_ejected"]


def test_pair_kinds_from_a_hand_built_segment_history():
    hist = lc._SegmentHistory.__new__(lc._SegmentHistory)
    # fragments 1..4; 1 and 2 one segment in 2 of 3 frames, 1 and 3 never,
    # 1 and 4 always; 5 never seen with 1
    hist.frames = [
        {1: 7, 2: 7, 3: 8, 4: 7},
        {1: 9, 2: 9, 3: 10, 4: 9},
        {1: 11, 2: 12, 3: 13, 4: 11},
        {5: 3},
    ]
    assert hist.pair(1, 2) == (2, 3) and hist.pair(1, 3) == (0, 3) and hist.pair(1, 5) == (0, 0)
    rows = [_row(2, 1), _row(3, 1), _row(4, 1), _row(5, 1), _row(6, -1)]
    kinds = lc.pair_kinds(rows, hist)
    assert kinds == {"never": 1, "sometimes": 1, "always": 1, "no_pair": 2}
    assert [r.get("one_segment") for r in rows] == ["2/3", "0/3", "3/3", "0/0", None]


def test_prediction_errors_in_mm_and_in_sigmas():
    """Two fragments with known crossings, their decisions 1 and 3 ticks early
    (0.5 mm a tick, edge sigma 2 ticks = 1 mm), x 0.5 and 2.0 mm off (sigma
    1 mm); a third fragment has no decision within 8 mm."""
    import types

    import numpy as np

    def rec(lead, x):
        return types.SimpleNamespace(cross_lead_tick=lead, cross_trail_tick=lead + 40, x_cross_mm=x)

    recs = [rec(100.0, 50.0), rec(300.0, 80.0), rec(900.0, 10.0)]
    dec = {
        1: np.array([99.0, 139.0, 2.0, 50.5, 1.0, 5.0, 20.0, 0]),
        2: np.array([297.0, 337.0, 2.0, 82.0, 1.0, 5.0, 20.0, 0]),
    }
    p = lc.prediction_errors(recs, dec, 0.5)
    assert p["n"] == 2
    assert p["lead_err_mm_p50_p90_p99"][0] == pytest.approx(1.0)  # median of 0.5, 1.5
    assert p["lead_within_1_2_sigma"] == [0.5, 1.0]
    assert p["x_within_1_2_sigma"] == [0.5, 1.0]
    assert p["sigma_edge_mm_p50"] == pytest.approx(1.0)
    assert lc.prediction_errors(recs, {}, 0.5) == {"n": 0}
