"""Every procedure on the virtual bench rig recovers the hidden truth within the targets."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.charuco import BoardSpec
from calibration.geometry import LineGeometry
from sim.benchrig.session import TARGETS, BenchReport, run_bench


@pytest.fixture(scope="module", params=[4, 9], ids=["rig4", "rig9"])
def report(request: pytest.FixtureRequest) -> BenchReport:
    """A fresh rig with its own hidden truth per seed."""
    return run_bench(seed=request.param, quick=True)


@pytest.mark.parametrize(
    "name",
    [
        "reprojection_rms_px",
        "mm_per_px_rel",
        "mm_per_tick_rel",
        "y_valve_mm",
        "delay_ms",
        "valve_x_mm",
    ],
)
def test_estimate_within_target(report: BenchReport, name: str) -> None:
    row = report.comparison()[name]
    assert row["error"] <= TARGETS[name], row
    assert row["passed"]


def test_dead_valve_found_and_bad_view_rejected(report: BenchReport) -> None:
    cmp = report.comparison()
    assert cmp["dead_valves"]["estimated"] == list(report.truth.dead_valves)
    assert cmp["bad_view_rejected"]["passed"], report.intrinsics.rejected
    assert report.passed()


def test_procedures_pass_their_own_checks(report: BenchReport) -> None:
    parts = (report.intrinsics, report.belt_plane, report.encoder, report.valves, report.valve_x)
    for part in parts:
        assert part.passed, [c.to_dict() for c in part.checks if not c.passed]
    assert report.calibration.passed


def test_every_delay_close_to_truth(report: BenchReport) -> None:
    tr, v = report.truth, report.valves
    alive = np.setdiff1d(np.arange(tr.n_valves), tr.dead_valves)
    assert np.all(np.isfinite(v.open_delay_ms[alive]))
    np.testing.assert_allclose(v.open_delay_ms[alive], tr.open_delay_ms[alive], atol=1.0)
    np.testing.assert_allclose(v.close_delay_ms[alive], tr.close_delay_ms[alive], atol=1.0)
    assert np.all(np.isnan(v.open_delay_ms[list(tr.dead_valves)]))
    assert np.all(v.check_hit_rate[alive] >= 0.9)


def test_camera_model_matches_true_camera_over_the_view(report: BenchReport) -> None:
    """Belt position error over the whole image: what vision gets from the calibration."""
    cam = report.truth.camera
    cols, rows = np.meshgrid(
        np.linspace(20, cam.width_px - 21, 25), np.linspace(20, cam.height_px - 21, 9)
    )
    est = np.stack(report.encoder.camera_model.px_to_mm(cols.ravel(), rows.ravel()), axis=1)
    true = cam.pixel_to_belt(cols.ravel(), rows.ravel())
    err = np.hypot(*(est - true).T)
    assert err.max() < 1.5, err.max()
    assert np.median(err) < 0.4, np.median(err)


def test_calibration_applies_to_the_line(report: BenchReport) -> None:
    geom = report.calibration.apply(LineGeometry())
    tr = report.truth
    assert geom.belt.mm_per_tick == pytest.approx(tr.mm_per_tick, rel=0.005)
    assert geom.valves.y_valve_mm == pytest.approx(tr.y_valve_mm, abs=1.0)
    assert geom.valves.disabled_valves == tr.dead_valves
    alive = [v for v in range(tr.n_valves) if v not in tr.dead_valves]
    np.testing.assert_allclose(
        geom.valves.open_delay_of(np.array(alive)), tr.open_delay_ms[alive], atol=1.0
    )
    sx, sy = report.calibration.camera_model().centre_scale_mm_per_px()
    assert geom.camera.mm_per_px_x == pytest.approx(sx, rel=1e-9)
    assert geom.camera.mm_per_px_y == pytest.approx(sy, rel=1e-9)


def test_board_spec_rejects_marker_bigger_than_square() -> None:
    with pytest.raises(ValueError, match="marker_mm"):
        BoardSpec(square_mm=30.0, marker_mm=35.0)


def test_hit_curves_show_the_window(report: BenchReport) -> None:
    """Pooled hit rate against timing offset from each valve's best: 1 near 0, 0 far out."""
    curves = report.valves.hit_curves
    assert [c["speed_mm_s"] for c in curves] == [500.0, 3000.0]
    for curve in curves:
        offset = np.array(curve["offset_ms"])
        rate = np.array(curve["hit_rate"])
        assert rate[np.abs(offset) <= 0.5].min() >= 0.95
        assert rate[np.abs(offset) >= 8.0].max() <= 0.05
    v = report.valves
    alive = np.setdiff1d(np.arange(80), report.truth.dead_valves)
    assert np.all(v.margin_ms[alive] > 0) and np.all(v.best_offset_se_ms[alive] < 0.5)


def test_valve_bar_position_and_jet_width(report: BenchReport) -> None:
    tr, vx = report.truth, report.valve_x
    assert vx.pitch_mm == pytest.approx(tr.pitch_mm, rel=0.002)
    assert vx.jet_width_mm == pytest.approx(tr.blast_width_mm, abs=0.5)
    alive = np.setdiff1d(np.arange(tr.n_valves), tr.dead_valves)
    np.testing.assert_allclose(vx.centre_mm[alive], tr.valve_centre_mm(alive), atol=1.5)
    geom = report.calibration.apply(LineGeometry())
    assert geom.valves.x_first_mm == pytest.approx(tr.x_first_mm, abs=1.0)
