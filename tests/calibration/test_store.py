"""Calibration store: versions, activation, rollback, diff, bad files, atomic writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from calibration.camera_model import CameraModel
from calibration.geometry import CameraGeometry, LineGeometry
from calibration.record import BeltSection, Calibration, CameraSection, ValvesSection
from calibration.store import CalibrationStore, atomic_write_bytes
from core.errors import InputFileError

LINE = "line-a"


def _cal(
    mm_per_tick: float,
    y_valve_mm: float,
    passed: bool = True,
    line: str = LINE,
    view_width_mm: float = 1000.0,
) -> Calibration:
    model = CameraModel.nominal(CameraGeometry(view_width_mm=view_width_mm))
    return Calibration(
        line=line,
        passed=passed,
        source="test",
        camera=CameraSection(**model.to_dict()),
        belt=BeltSection(mm_per_tick=mm_per_tick),
        valves=ValvesSection(
            y_valve_mm=y_valve_mm,
            open_delay_ms=[3.5] * 80,
            close_delay_ms=[2.0] * 79 + [2.5],
            disabled_valves=[7],
        ),
    )


@pytest.fixture
def store(tmp_path: Path) -> CalibrationStore:
    s = CalibrationStore(tmp_path, LINE)
    s.save(_cal(0.1010, 302.0), "alice")
    s.save(_cal(0.0995, 298.5, view_width_mm=990.0), "bob")
    return s


def test_versions_save_and_load(store: CalibrationStore) -> None:
    assert store.versions() == [1, 2]
    v2 = store.load(2)
    assert v2.version == 2 and v2.created_by == "bob" and v2.belt is not None
    assert v2.belt.mm_per_tick == 0.0995
    assert store.active_version() is None and store.active() is None


def test_activate_rollback_restores_previous_behaviour(store: CalibrationStore) -> None:
    base = LineGeometry()
    store.activate(1, "alice")
    geom_v1 = store.active().apply(base)
    store.activate(2, "bob", note="new belt")
    geom_v2 = store.active().apply(base)
    assert geom_v2.belt.mm_per_tick == 0.0995 and geom_v2.camera.view_width_mm == 990.0
    back = store.rollback("carol")
    assert (back.version, back.who, back.action, back.previous_version) == (
        1,
        "carol",
        "rollback",
        None,
    )
    assert store.active().apply(base) == geom_v1
    assert store.active_record().who == "carol"
    assert [h.version for h in store.history()] == [1, 2, 1]
    with pytest.raises(InputFileError, match="nothing to roll back to"):
        store.rollback("carol")


def test_apply_puts_per_valve_numbers_in(store: CalibrationStore) -> None:
    geom = store.load(1).apply(LineGeometry())
    assert geom.valves.y_valve_mm == 302.0
    assert geom.valves.disabled_valves == (7,)
    assert geom.valves.close_delay_of(np.array([0, 79])).tolist() == [2.0, 2.5]
    assert geom.valves.open_delay_ms == 3.5


@pytest.mark.parametrize(
    ("geometry", "match"),
    [
        (
            LineGeometry.model_validate({"valves": {"n_valves": 40, "pitch_mm": 25.0}}),
            "delays for 80 valves, the line has 40",
        ),
        (LineGeometry.model_validate({"camera": {"width_px": 640}}), "1280x512 px camera"),
    ],
)
def test_apply_refuses_what_does_not_fit(
    store: CalibrationStore, geometry: LineGeometry, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        store.load(1).apply(geometry)


def test_diff_lists_changed_values(store: CalibrationStore) -> None:
    entries = {e.path: (e.old, e.new) for e in store.diff(1, 2)}
    assert entries["belt.mm_per_tick"] == (0.1010, 0.0995)
    assert entries["valves.y_valve_mm"] == (302.0, 298.5)
    assert "camera.homography_px_to_mm[0][0]" in entries
    assert not any(p.startswith(("version", "created", "valves.open")) for p in entries)
    assert store.diff(1, 1) == []


def test_failed_calibration_is_not_applied_unless_forced(store: CalibrationStore) -> None:
    bad = store.save(_cal(0.2, 300.0, passed=False), "dave")
    with pytest.raises(InputFileError, match="failed its checks and is not applied"):
        store.activate(bad.version, "dave")
    assert store.active_version() is None
    store.activate(bad.version, "dave", note="commissioning", force=True)
    assert store.active_version() == bad.version


def _write(tmp_path: Path, data: object, name: str = "cal.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda d: d.update(line="line-b"), "line 'line-b', not 'line-a': use --line line-b"),
        (lambda d: d.update(schema_version=0), "older than this sortline's 1: recalibrate"),
        (lambda d: d.update(schema_version=2), "newer sortline .* upgrade"),
        (lambda d: d.pop("schema_version"), "not a sortline calibration file"),
        (lambda d: d["belt"].update(mm_per_tick=-1.0), "belt.mm_per_tick: .*greater than 0"),
        (lambda d: d["camera"].update(dist_coeffs=[0.0] * 3), "camera.dist_coeffs"),
        (lambda d: d.update(extra=1), "extra: "),
        (lambda d: d.update(passed="yes"), "passed: Input should be a valid boolean"),
    ],
)
def test_bad_files_get_one_line_errors(
    store: CalibrationStore, tmp_path: Path, mutate, match: str
) -> None:
    data = _cal(0.1, 300.0).model_dump(mode="json")
    mutate(data)
    with pytest.raises(InputFileError, match=match) as err:
        store.import_file(_write(tmp_path, data), "eve")
    assert "\n" not in str(err.value)
    assert store.versions() == [1, 2]


def test_not_json_and_missing_version(store: CalibrationStore, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not valid JSON"):
        store.import_file(_write(tmp_path, "{nope"), "eve")
    with pytest.raises(InputFileError, match=r"no calibration version 9 .* \(have: 1, 2\)"):
        store.load(9)
    good = store.import_file(_write(tmp_path, _cal(0.1, 300.0).model_dump(mode="json")), "eve")
    assert good.version == 3 and good.created_by == "eve"


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from calibration.store import CalibrationStore, atomic_write_bytes

    def pause(n):
        print("wrote", n, flush=True)
        time.sleep(0.5)

    store = CalibrationStore(sys.argv[1], "line-a")
    if sys.argv[2] == "activate":
        store.activate(2, "mallory", note="x" * 400_000, _on_chunk=pause)
    else:
        atomic_write_bytes(store.path_of(3), b"{" * 400_000, replace=False, on_chunk=pause)
    print("finished", flush=True)
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", ["activate", "new_version"])
def test_store_survives_a_writer_killed_mid_write(store: CalibrationStore, what: str) -> None:
    store.activate(1, "alice")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(store.root), what],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("wrote"), first  # the writer is inside the file now
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=20)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert list(store.folder.glob(".*.tmp")), "the temp file of the killed writer"
    fresh = CalibrationStore(store.root, LINE)
    assert fresh.versions() == [1, 2]
    assert fresh.active_version() == 1 and fresh.active_record().who == "alice"
    assert fresh.active().belt.mm_per_tick == 0.1010
    fresh.activate(2, "bob")  # and the store keeps working
    assert fresh.active_version() == 2


def test_atomic_write_never_clobbers_a_version(tmp_path: Path) -> None:
    target = tmp_path / "v000001.json"
    atomic_write_bytes(target, b"one", replace=False)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"two", replace=False)
    assert target.read_bytes() == b"one"
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_line_name(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="line name"):
        CalibrationStore(tmp_path, "../escape")


def test_concurrent_saves_get_distinct_versions(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def save(i: int) -> int:
        return CalibrationStore(tmp_path, LINE).save(_cal(0.1 + i * 1e-4, 300.0), f"w{i}").version

    with ThreadPoolExecutor(max_workers=6) as pool:
        got = sorted(pool.map(save, range(12)))
    assert got == list(range(1, 13))
    store = CalibrationStore(tmp_path, LINE)
    assert {store.load(v).created_by for v in got} == {f"w{i}" for i in range(12)}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"schema_version": 0}, "activation history has schema_version 0"),
        ({"line": "line-b"}, "belongs to line 'line-b'"),
        ({"history": "nope"}, "activation history is damaged"),
    ],
)
def test_damaged_activation_history(store: CalibrationStore, change: dict, match: str) -> None:
    store.activate(1, "alice")
    path = store.folder / "active.json"
    data = json.loads(path.read_text())
    data.update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match=match):
        CalibrationStore(store.root, LINE).active_version()
