"""The bar across a real process boundary, as a plant runs it: ``sortline sim
plant --sensor-to`` (its own process: camera ring, PLC and the bar's UDP
rows) and ``sortline run --config`` with ``[sensor] enabled`` listening on
that port. The line's alarms tell from outside whether rows arrive: with the
bar streaming there is no ``sensor.link`` alarm; when the bar is taken away
(the plant restarted without it) the alarm is raised and the line sorts on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench._faults_procs import Line, Plant, free_port, until

pytestmark = pytest.mark.slow


def _sensor_alarm(line: Line) -> list[str]:
    return [a for a in line.alarms() if a.startswith("sensor.link")]


def test_bar_rows_cross_processes_and_a_missing_bar_is_an_alarm(tmp_path: Path) -> None:
    udp = free_port()
    ring, plc_port, score_port = f"sortline-sensor-{udp}", free_port(), free_port()
    plant = Plant(ring, plc_port, score_port, tmp_path,
                  extra=("--sensor-to", f"127.0.0.1:{udp}")).start()  # fmt: skip
    assert plant.proc is not None
    line = None
    try:
        line = Line(
            f'[camera]\nsource = "shm:{ring}"\n[plc]\nport = {plc_port}\n'
            f"[sim]\nenabled = false\n[records]\nenabled = false\n"
            f"[sensor]\nenabled = true\nport = {udp}\n",
            tmp_path,
        )
        assert until(lambda: line.state() == "EXECUTE", 30, 0.1) is not None, line.causes()
        time.sleep(7.0)  # past the link's start-up grace (5 s)
        assert _sensor_alarm(line) == [], line.alarms()
        # the plant again, without its bar: the line keeps its camera and PLC, the rows stop
        plant.proc.stop()
        plant = Plant(ring, plc_port, score_port, tmp_path).start()
        assert until(lambda: bool(_sensor_alarm(line)), 20, 0.2) is not None, line.alarms()
        assert "no valid packet" in _sensor_alarm(line)[0]
        assert until(lambda: line.state() == "EXECUTE", 30, 0.1) is not None, line.causes()
    finally:
        if line is not None:
            line.proc.stop()
        if plant.proc is not None:
            plant.proc.stop()


def test_a_bad_sensor_target_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "sortline.cli", "sim", "plant", "--sensor-to", "nowhere"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "--sensor-to 'nowhere': expected HOST:PORT" in res.stderr
    assert res.stderr.strip().count("\n") == 0
