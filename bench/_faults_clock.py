"""``python -m bench._faults_clock ARGS``: ``sortline ARGS`` with a wall clock
the fault bench can step. ``time.time`` and ``time.time_ns`` are replaced
before sortline is imported; SIGUSR1 steps them an hour forward, SIGUSR2 an
hour back (as an NTP step or an operator setting the clock does).
``time.monotonic`` and ``time.perf_counter`` are untouched: that is the
point of the test. ``datetime.now()`` reads the C library's clock and is not
stepped here (records and the audit log stamp with it).
"""

from __future__ import annotations

import signal
import sys
import time

STEP_S = 3600.0
_offset_s = [0.0]
_real_time, _real_time_ns = time.time, time.time_ns


def _time() -> float:
    return _real_time() + _offset_s[0]


def _time_ns() -> int:
    return _real_time_ns() + int(_offset_s[0] * 1e9)


def _step(sign: float) -> None:
    _offset_s[0] += sign * STEP_S
    msg = f"wall clock stepped {sign * STEP_S:+.0f} s (offset {_offset_s[0]:+.0f} s)\n"
    sys.stderr.write(msg)
    sys.stderr.flush()


def main() -> int:
    time.time = _time
    time.time_ns = _time_ns
    signal.signal(signal.SIGUSR1, lambda *_: _step(+1.0))
    signal.signal(signal.SIGUSR2, lambda *_: _step(-1.0))
    from sortline.cli import main as sortline_main

    return int(sortline_main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
