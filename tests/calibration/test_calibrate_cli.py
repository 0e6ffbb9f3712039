"""``sortline calibrate bench --virtual`` and ``sortline calibrate store ...`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sortline.cli import main


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cal")
    out = root / "bench.json"
    rc = main(
        [
            "calibrate",
            "bench",
            "--virtual",
            "--quick",
            "--seed",
            "3",
            "--json",
            str(out),
            "--store",
            str(root / "store"),
            "--who",
            "alice",
            "--save",
            "--activate",
        ]
    )
    assert rc == 0
    return root, json.loads(out.read_text())


def test_bench_json_has_estimates_truth_and_targets(bench: tuple[Path, dict]) -> None:
    _, report = bench
    assert report["command"].startswith("sortline calibrate bench --virtual --seed 3 --quick")
    assert report["passed"] and report["procedures_passed"]
    cmp = report["comparison"]
    for name in ("mm_per_px_rel", "mm_per_tick_rel", "y_valve_mm", "delay_ms"):
        assert {"estimated", "true", "error", "target", "passed"} <= set(cmp[name])
        assert cmp[name]["error"] <= cmp[name]["target"]
    assert cmp["dead_valves"]["estimated"] == cmp["dead_valves"]["true"]
    assert report["saved_version"] == 1 and report["activated"]
    assert set(report["seconds"]) == {
        "intrinsics",
        "belt_plane",
        "encoder_scale",
        "valves",
        "valve_x",
    }


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_store_commands(
    bench: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = bench
    store = ["--store", str(root / "store")]
    # a second version, imported from the first one's file with another value
    data = json.loads((root / "store" / "virtual-plant" / "v000001.json").read_text())
    data["belt"]["mm_per_tick"] = 0.125
    (tmp_path / "v.json").write_text(json.dumps(data))
    rc, out, _ = _run(
        capsys, "calibrate", "store", "import", str(tmp_path / "v.json"), *store, "--who", "bob"
    )
    assert rc == 0 and "imported as v2" in out
    rc, out, _ = _run(capsys, "calibrate", "store", "diff", "1", "2", *store)
    assert rc == 0 and "belt.mm_per_tick:" in out and "-> 0.125" in out
    rc, out, _ = _run(capsys, "calibrate", "store", "activate", "2", *store, "--who", "bob")
    assert rc == 0 and "v2 active (was 1), by bob" in out
    rc, out, _ = _run(capsys, "calibrate", "store", "show", *store)
    shown = json.loads(out)
    assert shown["version"] == 2 and shown["activated_by"] == "bob" and shown["active"]
    rc, out, _ = _run(capsys, "calibrate", "store", "rollback", *store, "--who", "carol")
    assert rc == 0 and "rolled back to v1, by carol" in out
    rc, out, _ = _run(capsys, "calibrate", "store", "list", *store)
    assert rc == 0 and out.splitlines()[0].startswith("* v1") and "rollback v1 by carol" in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["calibrate", "bench"], "pass --virtual"),
        (["calibrate", "store", "show", "9"], "no calibration version 9"),
        (["calibrate", "store", "rollback", "--line", "empty-line"], "nothing to roll back"),
        (["calibrate", "store", "activate", "1", "--line", "Bad/Name"], "line name"),
    ],
)
def test_bad_input_one_line_error(
    bench: tuple[Path, dict], capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    root, _ = bench
    rc, _, err = _run(capsys, *argv, "--store", str(root / "store"))
    assert rc == 2
    assert match in err and len(err.strip().splitlines()) == 1
