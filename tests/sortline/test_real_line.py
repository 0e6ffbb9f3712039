"""The production path with real process boundaries on loopback: a PLC
process (`sortline sim plc`, `sortline sim plant`) and a line reading a
camera that is not the embedded plant (a recorded video, the GenICam
simulated producer, the plant's shared-memory frame ring)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sortline.config import load_config
from sortline.runtime import SortingLine

from .conftest import ApiKeys, until

SORTLINE = [sys.executable, "-m", "sortline.cli"]


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a sortline process and wait for its first line (it is serving)."""
    proc = subprocess.Popen(
        [*SORTLINE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"{args[:2]} did not start: {err}")
    return proc, line


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def sim_plc(free_port: int) -> Iterator[int]:
    proc, _ = _start(["sim", "plc", "--port", str(free_port)])
    try:
        yield free_port
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def belt_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("video") / "belt.mp4"
    r = subprocess.run(
        [*SORTLINE, "sim", "record", "--out", str(out), "--seconds", "3", "--seed", "4"],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def _run_line(cfg: Path, report: Path, duration_s: float) -> dict:
    r = subprocess.run(
        [*SORTLINE, "run", "--config", str(cfg), "--duration", str(duration_s),
         "--report", str(report)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data: dict = json.loads(report.read_text())
    return data


@pytest.mark.slow
def test_recorded_video_with_the_plc_in_another_process(
    sim_plc: int, belt_video: Path, tmp_path: Path, free_port: int
) -> None:
    cfg = tmp_path / "line.toml"
    cfg.write_text(
        f'[camera]\nsource = "{belt_video}"\ntimebase = "free"\n'
        f"[plc]\nport = {sim_plc}\n[api]\nport = 0\n[sim]\nenabled = false\n"
    )
    r = _run_line(cfg, tmp_path / "report.json", duration_s=5.0)
    n_video = 300  # 3 s at 100 fps
    assert r["virtual_plant"] is False and r["purity"] is None  # a real line: no ground truth
    assert r["frames"] > 200, r
    # every video frame is processed or counted as dropped: none silently lost
    assert r["frames"] + r["frames_dropped"] == n_video, r["camera"]
    assert r["camera"]["frames_read"] + r["camera"]["frames_lost"] == n_video
    assert r["timebase"]["mode"] == "free"
    assert r["objects_targeted"] > 0 and r["plc"]["pulses_acked"] > 0, r["plc"]
    assert r["plc"]["pulses_acked"] == r["plc"]["pulses_submitted"] - r["plc"]["pulses_late"]
    assert r["plc"]["plc_counters"]["pulses_executed"] > 0  # the PLC's own counters kept
    assert r["state"] == "HELD" and "video ended" in json.dumps(r["camera"])


def _viky() -> Path:
    genicam = pytest.importorskip("genicam")
    pytest.importorskip("harvesters")
    cti = Path(genicam.__file__).parent / "viky.cti"
    if not cti.is_file():
        pytest.skip("the genicam wheel has no simulated producer here")
    return cti


@pytest.mark.slow
def test_genicam_camera_free_running(sim_plc: int, tmp_path: Path, free_port: int) -> None:
    cti = _viky()
    cfg = tmp_path / "line.toml"
    cfg.write_text(
        f'[camera]\nsource = "genicam:{cti}#0"\ntimebase = "free"\nwidth_px = 400\n'
        f"height_px = 400\nview_width_mm = 1000.0\nview_length_mm = 1000.0\nstall_ms = 1000.0\n"
        f'[camera.genicam]\npixel_format = "RGBa8"\n'
        f"[valves]\ny_valve_mm = 700.0\n"
        f"[plc]\nport = {sim_plc}\n[api]\nport = 0\n[sim]\nenabled = false\n"
    )
    r = _run_line(cfg, tmp_path / "report.json", duration_s=3.0)
    assert r["frames"] >= 10, r["camera"]
    assert r["timebase"]["mode"] == "free"
    # every frame processed had its count (the report is taken while the loop
    # runs: one frame may be stamped and not yet counted as processed)
    assert 0 <= r["timebase"]["frames_stamped"] - r["frames"] <= 1
    assert r["camera"]["name"].startswith("genicam:")
    assert r["state"] == "EXECUTE", r


FRAMES = 400
SEED = 11


def _stepped_report(line: SortingLine) -> dict:
    line.start()
    try:
        line.run_frames(FRAMES)
        return line.report()
    finally:
        line.stop()


@pytest.fixture(scope="module")
def in_process_report() -> dict:
    return _stepped_report(SortingLine(load_config(), stepped=True, plc_port=0, seed=SEED))


@pytest.mark.slow
def test_plant_in_its_own_process_matches_the_in_process_plant(
    in_process_report: dict, tmp_path: Path, free_port: int
) -> None:
    ring = f"sortline-test-{free_port}"
    plant, started = _start(
        ["sim", "plant", "--stepped", "--seed", str(SEED), "--ring", ring,
         "--plc-port", "0", "--score-port", "0"]
    )  # fmt: skip
    try:
        plc_port = int(started.split("127.0.0.1:")[1].split()[0].rstrip(",;"))
        score_url = "http://" + started.split("http://")[1].split()[0].rstrip(",;")
        cfg = tmp_path / "line.toml"
        cfg.write_text(
            f'[camera]\nsource = "shm:{ring}"\n[plc]\nport = {plc_port}\n'
            f'[sim]\nenabled = false\nscore_url = "{score_url}"\n[records]\nenabled = false\n'
        )
        sep = _stepped_report(SortingLine(load_config(cfg), stepped=True))
    finally:
        _stop(plant)
    inp = in_process_report
    assert sep["frames"] == inp["frames"] == FRAMES and sep["frames_dropped"] == 0
    assert sep["objects_targeted"] >= 20
    assert abs(sep["purity"] - inp["purity"]) <= 0.02, (sep["score"], inp["score"])
    assert abs(sep["recovery"] - inp["recovery"]) <= 0.02
    tb = sep["timebase"]
    # hardware trigger: every frame matched to its trigger, at exactly its exposure count
    assert tb["mode"] == "trigger" and tb["frames_stamped"] == FRAMES
    assert tb["mismatches"] == 0 and tb["frames_unstamped"] == 0
    assert tb["error_source"] == "camera" and tb["error_ticks_max"] == 0.0


def test_in_process_trigger_mode_places_every_frame_exactly(in_process_report: dict) -> None:
    tb = in_process_report["timebase"]
    assert tb["mode"] == "trigger" and tb["frames_stamped"] == FRAMES
    assert tb["error_ticks_max"] == 0.0 and tb["mismatches"] == 0


@pytest.mark.slow
def test_estop_cycle_over_modbus_returns_to_execute() -> None:
    from sortline.state import Command, TransitionError

    line = SortingLine(load_config(), stepped=True, plc_port=0, seed=3, records=False)
    line.start()
    try:
        line.run_frames(50)
        assert line.state.state.name == "EXECUTE"
        core = line.parts.plant.plc
        core.set_estop(True)
        line.run_frames(2)
        assert line.state.state.name == "ABORTED" and line.state.causes == ("e-stop",)
        with pytest.raises(TransitionError, match="E-stop"):
            line.command(Command.RESET, who="test")
        core.set_estop(False)
        line.run_frames(2)
        assert line.state.state.name == "ABORTED"  # latched until Reset
        assert line.command(Command.RESET, who="test").name == "IDLE"
        assert line.command(Command.START, who="test").name == "EXECUTE"
        acked = line.parts.bridge.snapshot().pulses_acked
        line.run_frames(150)
        assert line.state.state.name == "EXECUTE"
        assert line.parts.bridge.snapshot().pulses_acked > acked  # pulses flow again
        causes = [e.cause for e in line.snapshot().events]
        assert "reset by test" in causes and "start by test" in causes, causes
    finally:
        line.stop()


def test_plc_refusing_a_command_is_reported() -> None:
    from sortline.state import Command, TransitionError

    line = SortingLine(load_config(), stepped=True, plc_port=0, records=False)
    line.start()
    try:
        line.run_frames(3)
        assert line.command(Command.STOP, who="test").name == "STOPPED"
        line.parts.plant.plc.set_estop(True)
        line.parts.plant.plc.set_estop(False)  # the PLC latched Aborted
        line.run_frames(1)
        assert line.state.state.name == "ABORTED"
        with pytest.raises(TransitionError, match="cannot start while ABORTED"):
            line.command(Command.START, who="test")
        # pressed again before the line saw it: the controller lets RESET through,
        # the PLC refuses it, and the refusal is reported with the PLC's reason
        line.parts.plant.plc.set_estop(True)
        with pytest.raises(TransitionError, match="reset: PLC refused: E-stop open"):
            line.command(Command.RESET, who="test")
        assert line.parts.bridge.snapshot().last_command == "RESET: refused: E-stop open"
        causes = [e.cause for e in line.snapshot().events]
        assert "reset by test: PLC refused: E-stop open" in causes
    finally:
        line.stop()


def test_config_without_a_camera_is_refused_at_start_up(tmp_path: Path) -> None:
    cfg = tmp_path / "line.toml"
    cfg.write_text("[sim]\nenabled = false\n")
    r = subprocess.run([*SORTLINE, "run", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    lines = [s for s in r.stderr.splitlines() if s.strip()]
    assert len(lines) == 1 and "camera.source" in lines[0] and "line.toml" in lines[0], r.stderr


@pytest.mark.slow
def test_estop_cycle_with_the_plant_in_its_own_process(
    free_port: int, tmp_path: Path, api_keys: ApiKeys
) -> None:
    """E-stop pressed at the plant (its panel), Reset and Start over the status
    API: the PLC and the line return to Execute and pulses flow again."""
    import httpx

    from sortline.api import ApiServer

    ring = f"sortline-estop-{free_port}"
    plant, started = _start(
        ["sim", "plant", "--stepped", "--seed", "5", "--ring", ring, "--plc-port", "0",
         "--score-port", "0"]
    )  # fmt: skip
    try:
        plc_port = int(started.split("127.0.0.1:")[1].split()[0].rstrip(",;"))
        panel = "http://" + started.split("http://")[1].split()[0].rstrip(",;").removesuffix(
            "/score"
        )
        cfg = tmp_path / "line.toml"
        cfg.write_text(
            f'[camera]\nsource = "shm:{ring}"\n[plc]\nport = {plc_port}\n'
            f"[sim]\nenabled = false\n[records]\nenabled = false\n"
        )
        line = SortingLine(load_config(cfg), stepped=True)
        api = ApiServer(api_keys.app(line), "127.0.0.1", 0)
        http = api_keys.client("operator")
        line.start()
        api.start()
        url = f"http://127.0.0.1:{api.port}"
        try:
            line.run_frames(40)
            assert http.get(f"{url}/health").json()["state"] == "EXECUTE"
            pressed = httpx.post(f"{panel}/estop", json={"pressed": True}).json()
            assert pressed["plc_state"] == "ABORTED"
            line.run_frames(2)
            assert http.get(f"{url}/health").json()["state"] == "ABORTED"
            r = http.post(f"{url}/commands/reset", json={"who": "op"})
            assert r.status_code == 409 and "E-stop" in r.json()["detail"], r.text
            httpx.post(f"{panel}/estop", json={"pressed": False})
            line.run_frames(2)
            r = http.post(f"{url}/commands/reset", json={"who": "op"})
            assert r.json() == {"state": "IDLE"}, r.text
            assert http.post(f"{url}/commands/start", json={"who": "op"}).json() == {
                "state": "EXECUTE"
            }
            acked = line.parts.bridge.snapshot().pulses_acked
            line.run_frames(150)
            status = http.get(f"{url}/status").json()
            assert status["state"] == "EXECUTE" and status["plc"]["pulses_acked"] > acked
            assert status["plc"]["last_command"] == "START: taken"
            causes = [e["cause"] for e in status["events"]]
            assert any(c.startswith("reset by op-ann: refused: ") for c in causes), causes
        finally:
            api.stop()
            line.stop()
    finally:
        _stop(plant)


@pytest.mark.slow
def test_plant_process_killed_and_restarted_the_line_recovers(
    free_port: int, tmp_path: Path
) -> None:
    """Wall clock: the plant process (camera + PLC) paused, then killed and
    started again: the line holds, says why, and returns to Execute by itself
    with frames and pulses flowing; frames are never processed twice."""
    import os

    ring, plc_port = f"sortline-kill-{free_port}", free_port
    args = ["sim", "plant", "--seed", "9", "--ring", ring, "--plc-port", str(plc_port),
            "--score-port", "0"]  # fmt: skip
    plant, _ = _start(args)
    cfg = tmp_path / "line.toml"
    cfg.write_text(
        f'[camera]\nsource = "shm:{ring}"\n[plc]\nport = {plc_port}\nreconnect_max_ms = 500\n'
        f"[sim]\nenabled = false\n[records]\nenabled = false\n"
    )
    line = SortingLine(load_config(cfg))
    line.start()
    try:
        assert until(lambda: line.snapshot().frames > 100, 20), line.snapshot().causes
        assert line.state.state.name == "EXECUTE"
        os.kill(plant.pid, signal.SIGSTOP)  # the plant hangs: camera and PLC silent
        assert until(lambda: line.state.state.name == "HELD", 3), line.state.causes
        assert "plc link lost" in line.state.causes
        os.kill(plant.pid, signal.SIGCONT)
        assert until(lambda: line.state.state.name == "EXECUTE", 10), line.state.causes
        plant.kill()
        plant.wait(10)
        assert until(lambda: line.state.state.name == "HELD", 3)
        assert until(lambda: any("camera" in c for c in line.state.causes), 5)
        frames, acked = line.frames, line.parts.bridge.snapshot().pulses_acked
        plant, _ = _start(args)  # a new process: new PLC boot, new ring, counts from 0
        assert until(lambda: line.state.state.name == "EXECUTE", 15), line.state.causes
        assert until(lambda: line.parts.bridge.snapshot().pulses_acked > acked, 15)
        assert line.frames > frames
        # the new PLC counts from 0 again: tracking restarted, not confused
        assert until(lambda: line.snapshot().controller["encoder_resets"] >= 1, 5)
        snap = line.snapshot()
        assert snap.camera.reconnects >= 1 and snap.timebase.mismatches <= 2
    finally:
        line.stop()
        _stop(plant)
