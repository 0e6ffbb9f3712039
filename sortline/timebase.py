"""Each frame's encoder count: the line's time base (DESIGN.md, "One path").

Two documented modes, chosen by ``[camera] timebase``:

**trigger** (``TriggerTimeBase``): the PLC triggers the camera every N
encoder ticks and latches the count of each trigger in its register map
(``trigger_seq``, ``trigger_latch``; plc/REGISTERS.md). Frames are matched to
triggers by the camera's frame counter: ``seq = counter + offset`` .
Trigger numbers are the bridge's, unwrapped (they only grow while the PLC
runs); camera counters are the camera's (they restart when it reopens, and
the match is found afresh). The offset is found on the first frame and then checked on every frame
against the count interpolated from the PLC's timestamped encoder samples at
the frame's exposure time: frames that land a whole number of triggers
away from their matched trigger, ``REMATCH_AFTER`` frames in a row, mean the
camera lost a trigger or made an extra exposure. That is counted
(``mismatches``), the offset is re-found, and the frame is placed by the
trigger it does fit. A single frame off (a late encoder sample) is counted
as a timing outlier and placed by its match. A
frame newer than the last latch read is placed at the last latch plus N
ticks per trigger (the PLC's counter-compare fires exactly every N ticks) and
checked again when its latch arrives. Stepped simulation has no wall-clock
timing: there the latch of every frame is read before it is placed.

**free** (``FreeTimeBase``): a free-running camera. The count is interpolated
between the bridge's encoder samples (each stamped at the midpoint of its
Modbus round trip) at the frame's exposure time, or extrapolated from the
last two at the measured speed when the frame is newer than the last
sample. Never from the nominal belt speed.

Both use only the encoder samples whose round trip was short enough to date
them (``trusted``: a reply that took long may hold a count from anywhere in
its round trip); in trigger mode, when even those cannot tell one trigger
from the next (``dating_error_ticks`` over a quarter trigger: a slow serial
link at speed), a frame is placed by its match and counted as unchecked
(``frames_unchecked``), never re-matched on such timing.

Both measure their error: against the count the camera itself reports when
it does (``RawFrame.exposure_tick``: GenICam chunk data, the virtual plant),
else in trigger mode the gap between the latched and the interpolated count,
in free mode how far each new encoder sample lands from the count
extrapolated for its time from the samples before it.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

from core.ticks import wrap_tick
from vision.camera import RawFrame

__all__ = ["EncoderWatch", "FreeTimeBase", "Stamp", "TimeBase", "TimeBaseStatus", "TriggerTimeBase"]

_U32 = 1 << 32
_MAX_EXTRAPOLATE_S = 0.5  # beyond this past the last encoder sample, a count is a guess
REMATCH_AFTER = 3  # frames in a row off by the same whole number of triggers
MAX_SHIFT = 2  # a camera loses or adds a trigger or two; more is the encoder timing
RTT_FLOOR_S = 0.002  # encoder reads with round trips this short are all trusted
RTT_MEDIANS = 2.0  # longer than this many times the median round trip: not trusted


def _diff32(a: np.ndarray | int, b: np.ndarray | int) -> Any:
    """Signed a - b over the uint32 wrap."""
    return ((np.asarray(a, dtype=np.int64) - b + (_U32 >> 1)) % _U32) - (_U32 >> 1)


class _Samples(Protocol):
    @property
    def t_s(self) -> np.ndarray: ...
    @property
    def tick(self) -> np.ndarray: ...


class _Latches(Protocol):
    @property
    def seq(self) -> np.ndarray: ...
    @property
    def tick(self) -> np.ndarray: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Stamp:
    """tick: the frame's encoder count (uint32), None when it has none (the
    frame is dropped and counted); why: the reason, for the log."""

    tick: int | None
    why: str = ""


@dataclasses.dataclass(frozen=True)
class TimeBaseStatus:
    mode: Literal["trigger", "free"]
    frames_stamped: int
    frames_unstamped: int
    mismatches: int
    timing_outliers: int
    frames_unchecked: int  # trigger mode: placed unchecked, encoder reads too slow to date
    error_source: str  # "camera" (its own count), "encoder" (interpolation) or "none"
    error_ticks_p50: float | None
    error_ticks_p99: float | None
    error_ticks_max: float | None
    last_problem: str


def _recent_speed(t: np.ndarray, rel: np.ndarray) -> float | None:
    """Ticks per second over the last ~50 ms of samples or more (not one noisy
    pair): ``t`` (n >= 2,) sample times, ``rel`` their counts unwrapped; None
    when the samples span no time."""
    n = t.shape[0]
    j = int(np.searchsorted(t, t[-1] - 0.05, side="right")) - 1
    j = min(max(j, 0), n - 2)
    dt = t[-1] - t[j]
    if dt <= 0:
        return None
    return float((rel[-1] - rel[j]) / dt)


def interpolate(
    samples: _Samples, t_s: float, max_extrapolate_s: float = _MAX_EXTRAPOLATE_S
) -> float | None:
    """The encoder count (unwrapped near the last sample, float) at ``t_s`` from
    timestamped samples, or None when there are too few or ``t_s`` is too far
    outside them."""
    t = np.asarray(samples.t_s, dtype=np.float64)
    n = t.shape[0]
    if n == 0:
        return None
    ref = int(samples.tick[-1])
    rel = _diff32(samples.tick, ref).astype(np.float64)
    if n == 1:
        return float(ref) if abs(t_s - t[0]) < 1e-3 else None
    i = int(np.searchsorted(t, t_s))
    if i == 0:
        if t[0] - t_s > max_extrapolate_s:
            return None
        i = 1
    elif i >= n:
        if t_s - t[-1] > max_extrapolate_s:
            return None
        speed = _recent_speed(t, rel)
        if speed is None:
            return None
        return float(ref + rel[-1] + speed * (t_s - t[-1]))
    t0, t1 = t[i - 1], t[i]
    if t1 <= t0:
        return float(ref + rel[i])
    w = (t_s - t0) / (t1 - t0)
    return float(ref + rel[i - 1] + w * (rel[i] - rel[i - 1]))


def trusted(samples: _Samples) -> _Samples:
    """The encoder samples whose time is known well enough to use: a count is
    read at some instant of its Modbus round trip and stamped at the
    midpoint, so a reply that took long (a host starved of CPU, a busy PLC)
    may be off by half of it. Kept: round trips up to ``RTT_MEDIANS`` times
    the window's median, or ``RTT_FLOOR_S``; all of them without round trips."""
    rtt = getattr(samples, "rtt_s", None)
    if rtt is None or len(rtt) < 3:
        return samples
    rtt = np.asarray(rtt, dtype=np.float64)
    limit = max(RTT_MEDIANS * float(np.median(rtt)), RTT_FLOOR_S)
    keep = rtt <= limit
    if keep.all():
        return samples
    return _Head(np.asarray(samples.t_s)[keep], np.asarray(samples.tick)[keep], rtt[keep])


def dating_error_ticks(samples: _Samples) -> float:
    """How far (ticks) a count interpolated from ``samples`` may be off for the
    timing of the reads alone: half the longest round trip among them times the
    belt's speed over the last of them; 0 without round trips."""
    rtt = getattr(samples, "rtt_s", None)
    t = np.asarray(samples.t_s, dtype=np.float64)
    if rtt is None or len(rtt) == 0 or len(t) < 2:
        return 0.0
    rel = _diff32(samples.tick, int(samples.tick[-1])).astype(np.float64)
    speed = _recent_speed(t, rel)
    return 0.0 if speed is None else float(np.max(rtt)) / 2 * abs(speed)


class _ErrorWindow:
    def __init__(self, size: int = 2048) -> None:
        self._v: collections.deque[float] = collections.deque(maxlen=size)
        self.source = "none"

    def add(self, err_ticks: float, source: str) -> None:
        self._v.append(abs(float(err_ticks)))
        self.source = source

    def quantiles(self) -> tuple[float | None, float | None, float | None]:
        if not self._v:
            return None, None, None
        a = np.fromiter(self._v, dtype=np.float64)
        p50, p99 = np.percentile(a, [50, 99])
        return round(float(p50), 2), round(float(p99), 2), round(float(a.max()), 2)


@dataclasses.dataclass(frozen=True, slots=True)
class _Head:
    t_s: np.ndarray
    tick: np.ndarray
    rtt_s: np.ndarray | None = None


class TimeBase(Protocol):
    mode: Literal["trigger", "free"]

    def stamp(self, raw: RawFrame) -> Stamp: ...

    def reset(self) -> None: ...

    def status(self) -> TimeBaseStatus: ...


class _Base:
    mode: Literal["trigger", "free"]

    def __init__(self) -> None:
        self.stamped = 0
        self.unstamped = 0
        self.mismatches = 0
        self.last_problem = ""
        self._err = _ErrorWindow()

    def _ok(self, tick: int, raw: RawFrame) -> Stamp:
        self.stamped += 1
        if raw.exposure_tick is not None:
            self._err.add(float(_diff32(tick, int(raw.exposure_tick))), "camera")
        return Stamp(wrap_tick(tick))

    def _none(self, why: str) -> Stamp:
        self.unstamped += 1
        self.last_problem = why
        return Stamp(None, why)

    def status(self) -> TimeBaseStatus:
        p50, p99, mx = self._err.quantiles()
        return TimeBaseStatus(
            self.mode, self.stamped, self.unstamped, self.mismatches,
            getattr(self, "timing_outliers", 0), getattr(self, "unchecked", 0), self._err.source,
            p50, p99, mx, self.last_problem,
        )  # fmt: skip


class FreeTimeBase(_Base):
    """Free-running camera: interpolate the bridge's encoder samples."""

    mode: Literal["trigger", "free"] = "free"

    def __init__(self, samples: Callable[[], _Samples]) -> None:
        super().__init__()
        self._samples = samples
        self._seen_t_s = -np.inf
        self._since_t_s = -np.inf

    def reset(self) -> None:
        """A new count space (a PLC restart, an encoder jump): the samples so
        far belong to the old one; only the newest, and later ones, are used."""
        t = np.asarray(self._samples().t_s, dtype=np.float64)
        if len(t):
            self._since_t_s = float(t[-1])

    def _current(self) -> _Samples:
        samples = self._samples()
        t = np.asarray(samples.t_s, dtype=np.float64)
        if not len(t) or t[0] >= self._since_t_s:
            return trusted(samples)
        keep = t >= self._since_t_s
        rtt = getattr(samples, "rtt_s", None)
        rtt = None if rtt is None else np.asarray(rtt)[keep]
        return trusted(_Head(t[keep], np.asarray(samples.tick)[keep], rtt))

    def stamp(self, raw: RawFrame) -> Stamp:
        samples = self._current()
        est = interpolate(samples, raw.t_s)
        if est is None:
            return self._none("no recent encoder samples from the PLC")
        if raw.exposure_tick is None:
            self._residuals(samples)
        return self._ok(round(est), raw)

    def _residuals(self, samples: _Samples) -> None:
        """Without a count from the camera, the error measured is how far each
        new encoder sample lands from the count extrapolated for its time from
        the samples before it: what a frame between samples risks, at most."""
        t = np.asarray(samples.t_s, dtype=np.float64)
        for i in np.flatnonzero(t > self._seen_t_s).tolist():
            if i >= 2:
                head = _Head(t[:i], np.asarray(samples.tick)[:i])
                est = interpolate(head, float(t[i]))
                if est is not None:
                    self._err.add(float(_diff32(int(samples.tick[i]), round(est))), "encoder")
        if len(t):
            self._seen_t_s = float(t[-1])


class TriggerTimeBase(_Base):
    """Hardware-triggered camera: match frames to the PLC's trigger latches.

    every_ticks: N, the trigger period; check_timing: compare each frame with
    the interpolated encoder (False for stepped simulation, whose encoder does
    not follow the wall clock); refresh: called (stepped only) to read the
    frame's latch before placing it (blocking); hurry: called (never blocks)
    when no latch has been read at all yet, for a status read now.
    """

    mode: Literal["trigger", "free"] = "trigger"

    def __init__(
        self,
        latches: Callable[[], _Latches],
        samples: Callable[[], _Samples],
        every_ticks: int,
        *,
        check_timing: bool = True,
        refresh: Callable[[], object] | None = None,
        hurry: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        if every_ticks < 1:
            raise ValueError(f"every_ticks {every_ticks} must be >= 1")
        self.n = int(every_ticks)
        self._latches = latches
        self._samples = samples
        self.check_timing = check_timing
        self._refresh = refresh
        self._hurry = hurry
        self._offset: int | None = None  # trigger number - camera counter
        self._predicted: dict[int, int] = {}  # seq -> count placed by extrapolation
        self._suggested: collections.deque[int] = collections.deque(maxlen=REMATCH_AFTER)
        self.timing_outliers = 0  # frames off their trigger once, not (yet) a mismatch
        self.unchecked = 0  # frames placed without a check: encoder reads too slow to date

    def reset(self) -> None:
        """Forget the frame/trigger match (camera reopened, PLC restarted)."""
        self._offset = None
        self._predicted.clear()

    def _table(self) -> tuple[dict[int, int], int | None]:
        lat = self._latches()
        if len(lat.seq) == 0:
            return {}, None
        pairs = zip(lat.seq.tolist(), lat.tick.tolist(), strict=True)
        table = {int(s): int(k) for s, k in pairs}
        return table, int(lat.seq[-1])

    def _count_of(self, seq: int, table: dict[int, int], last: int) -> int | None:
        if seq in table:
            return table[seq]
        ahead = seq - last
        if not 0 < ahead <= 64:
            return None
        return table[last] + ahead * self.n

    def _check_predictions(self, table: dict[int, int]) -> None:
        for seq in [s for s in self._predicted if s in table]:
            placed = self._predicted.pop(seq)
            err = float(_diff32(placed, table[seq]))
            if abs(err) > self.n / 2:
                self.mismatches += 1
                self.last_problem = (
                    f"trigger {seq}: frame placed at {placed}, PLC latched {table[seq]}"
                )
        if len(self._predicted) > 256:
            self._predicted.clear()

    def _check(
        self, raw: RawFrame, seq: int, count: int, est: float, table: dict[int, int], last: int
    ) -> tuple[int, int | None]:
        """Compare the matched trigger's count with the encoder at the frame's
        time. One frame off proves nothing (a late encoder sample, a scheduling
        hiccup): the match changes only when ``REMATCH_AFTER`` frames in a row
        say the same whole number of triggers off (at most ``MAX_SHIFT``:
        further is the encoder's timing, not the camera), each within N/4 of it. The
        frames on the way are placed by the match they were made with."""
        err = float(_diff32(count, round(est)))
        shift = round(err / self.n)
        if shift == 0 or abs(shift) > MAX_SHIFT or abs(err - shift * self.n) > self.n / 4:
            self._suggested.clear()
            if shift != 0:
                self.timing_outliers += 1
            return seq, count
        self._suggested.append(shift)
        if len(self._suggested) < REMATCH_AFTER or len(set(self._suggested)) > 1:
            self.timing_outliers += 1
            return seq, count
        self._suggested.clear()
        self.mismatches += 1
        self.last_problem = (
            f"frame {raw.counter} is {shift:+d} trigger(s) off trigger {seq} for "
            f"{REMATCH_AFTER} frames: camera and triggers re-matched"
        )
        seq -= shift
        self._offset = seq - raw.counter
        return seq, self._count_of(seq, table, last)

    def stamp(self, raw: RawFrame) -> Stamp:
        table, last = self._table()
        stepped = not self.check_timing
        if self._refresh is not None and (last is None or stepped):
            self._refresh()  # stepped: read this frame's latch before placing it
            table, last = self._table()
        if last is None:
            if self._hurry is not None:
                self._hurry()  # ask the PLC now, not at the next poll
            return self._none("no camera trigger latched by the PLC yet")
        self._check_predictions(table)
        samples = trusted(self._samples()) if self.check_timing else None
        est = None if samples is None else interpolate(samples, raw.t_s)
        if self._offset is None:
            if samples is not None:
                if len(samples.t_s) < 2 or raw.t_s > float(samples.t_s[-1]):
                    # match the first frame by interpolation, never extrapolation:
                    # wait for an encoder sample read after it (asked for now)
                    if self._hurry is not None:
                        self._hurry()
                    return self._none("waiting for an encoder sample to match the first frame")
                if est is None:
                    return self._none("no recent encoder samples to match the first frame")
                steps = round(float(_diff32(round(est), table[last])) / self.n)
                seq = last + steps
            else:
                seq = last  # stepped: the newest latch is this frame's trigger
            self._offset = seq - raw.counter
        seq = raw.counter + self._offset
        count = self._count_of(seq, table, last)
        if count is not None and est is not None and samples is not None:
            if dating_error_ticks(samples) <= self.n / 4:
                seq, count = self._check(raw, seq, count, est, table, last)
            else:  # the reads' timing cannot tell one trigger from the next
                self.unchecked += 1
        if count is None:
            return self._none(f"frame {raw.counter}: no trigger latch matches (trigger {seq})")
        if seq not in table:
            self._predicted[seq] = count
        if raw.exposure_tick is None and est is not None:
            self._err.add(float(_diff32(count, round(est))), "encoder")
        return self._ok(count, raw)


class EncoderWatch:
    """The PLC's encoder as the loop sees it, sample by sample: a count that
    stands while the belt's speed input says it runs (``stuck``: a hold
    cause), or one that moves further than the belt can between two samples
    (``jumps``: the count space broke; the loop restarts tracking on it).

    stuck_s: how long a standing count is tolerated while the speed says the
    belt runs (also at least 20 ticks of travel at that speed; a PLC or plant
    process that stalls briefly is not a stuck encoder); jump_s: the travel,
    in seconds at the measured speed, allowed beyond the expected step (plus
    ``JUMP_MIN_MM``) before a step forward is a jump; a step back further than
    that allowance is one too. Less travel than expected is a belt that
    slowed, not a jump. A new PLC boot starts over.
    """

    JUMP_MIN_MM = 100.0

    def __init__(self, stuck_s: float = 0.25, jump_s: float = 0.2) -> None:
        self.stuck_s = stuck_s
        self.jump_s = jump_s
        self.jumps = 0
        self.last_jump_ticks = 0
        self.stuck = ""
        self._last: tuple[int, float, int] | None = None  # tick, t_s, boot id
        self._moved_t_s = 0.0
        self._lock = threading.Lock()

    def observe(
        self, tick: int | None, t_s: float, speed_mm_s: float, mm_per_tick: float, boot_id: int
    ) -> bool:
        """One PLC snapshot; True when the count jumped since the last one
        (thread-safe: the loop and an operator command both observe)."""
        with self._lock:
            return self._observe(tick, t_s, speed_mm_s, mm_per_tick, boot_id)

    def _observe(
        self, tick: int | None, t_s: float, speed_mm_s: float, mm_per_tick: float, boot_id: int
    ) -> bool:
        if tick is None or not mm_per_tick > 0:
            self._last, self.stuck = None, ""
            return False
        last, self._last = self._last, (int(tick), float(t_s), boot_id)
        if last is None or last[2] != boot_id:
            self._moved_t_s, self.stuck = t_s, ""
            return False
        if t_s <= last[1]:
            self._last = last  # the same sample again
            return False
        step = int(_diff32(int(tick), last[0]))
        ticks_per_s = max(speed_mm_s, 0.0) / mm_per_tick
        if step != 0:
            self._moved_t_s, self.stuck = t_s, ""
        elif ticks_per_s > 0:
            limit = max(self.stuck_s, 20.0 / ticks_per_s)
            if t_s - self._moved_t_s > limit:
                self.stuck = (
                    f"encoder count stuck at {int(tick)} for {t_s - self._moved_t_s:.2f} s "
                    f"while the belt runs at {speed_mm_s:.0f} mm/s"
                )
        else:
            self._moved_t_s = t_s
        expected = ticks_per_s * (t_s - last[1])
        slack = ticks_per_s * self.jump_s + self.JUMP_MIN_MM / mm_per_tick
        if -slack <= step <= expected + slack:  # less than expected: the belt slowed
            return False
        self.jumps += 1
        self.last_jump_ticks = step
        return True
