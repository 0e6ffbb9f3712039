"""What the alarm book is fed: the conditions that hold now, from what the
line publishes (``Observation``, read by ``observe``), turned into raised
alarms by ``AlarmEvaluator``; and the frame-loop listener behind
``model_uncertainty``. See ``sortline.alarms`` for the keys."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from plc.regmap import PackMLState
from sortline.belt_load import BeltLoadReading
from sortline.config import AlarmsSection
from sortline.listeners import Cycle

if TYPE_CHECKING:
    from sortline.runtime import SortingLine

Severity = Literal["critical", "warning", "info"]
LINK_GRACE_S = 10.0  # a PLC never reached (and no error yet): alarm after this
OVERFED_CLEAR = 0.8  # belt_overfed clears below this share of its limit


class Raised(NamedTuple):
    severity: Severity
    message: str


class UncertaintyReading(NamedTuple):
    share: float  # detections below the threshold / detections, last block
    baseline: float  # running baseline of ``share`` (not fed while rising)
    detections: int  # in the last block
    frames: int


def classified_below(confidence: np.ndarray, below: float) -> tuple[int, int]:
    """(views classified, of them below ``below``): a view vision chose not to
    classify carries NaN (``vision.track_crops``) and counts in neither."""
    classified = np.isfinite(confidence)
    n = int(np.count_nonzero(classified))
    return n, int(np.count_nonzero(classified & (confidence < below))) if n else 0


class UncertaintyListener:
    """Share of detections below ``below`` confidence, per block of at least
    ``window_frames`` frames and ``min_detections`` detections; the baseline is
    an exponential average (``alpha``) of blocks that were not rising."""

    def __init__(
        self, below: float, window_frames: int, rise: float, min_detections: int,
        alpha: float = 0.1,
    ) -> None:  # fmt: skip
        self.below, self.window_frames, self.rise = below, window_frames, rise
        self.min_detections, self.alpha = min_detections, alpha
        self.reading: UncertaintyReading | None = None
        self._baseline: float | None = None
        self._frames = self._n = self._low = 0

    def on_cycle(self, cycle: Cycle) -> None:
        self.add(*classified_below(cycle.detections.confidence, self.below))

    def add(self, detections: int, below: int) -> None:
        self._frames += 1
        self._n += detections
        self._low += below
        if self._frames < self.window_frames or self._n < self.min_detections:
            return
        share = self._low / self._n
        base = share if self._baseline is None else self._baseline
        if share - base < self.rise:
            base += self.alpha * (share - base)
        self._baseline = base
        self.reading = UncertaintyReading(share, base, self._n, self._frames)
        self._frames = self._n = self._low = 0

    def close(self) -> None:
        pass


# -------------------------------------------------------------- evaluator
@dataclasses.dataclass(frozen=True)
class Observation:
    """What the line published, as the evaluator reads it. ``t_s``: monotonic;
    counters are cumulative (a counter that goes back is a restart)."""

    t_s: float
    plc_started: bool = True  # False: the line is still warming up, no link is tried yet
    plc_linked: bool = True
    plc_where: str = "PLC"
    plc_error: str = ""
    plc_state: int = int(PackMLState.EXECUTE)
    estop: bool = False
    watchdog_trips: int = 0
    rejected_malformed: int = 0
    valve_cycles: tuple[int, ...] = ()
    valves_disabled: tuple[int, ...] = ()  # on purpose: not judged
    camera_problem: str = ""
    loop_failure: str = ""
    frames_stamped: int = 1
    frames_untimed: int = 0
    timebase_mismatches: int = 0
    timebase_unchecked: int = 0
    timebase_problem: str = ""
    deadline_misses: int = 0
    records_where: str = ""
    records_failed: int = 0
    records_written: int = 0
    records_dropped: int = 0
    records_error: str = ""
    uncertainty: UncertaintyReading | None = None
    model: str = "the model"
    belt_load: BeltLoadReading | None = None


class _Increase:
    """Increase of a cumulative counter over the last ``window_s``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, t_s: float, value: int) -> int:
        s = self._samples
        if s and value < s[-1][1]:
            s.clear()  # the counter restarted (PLC reboot): a new baseline
        if not s or value != s[-1][1]:
            s.append((t_s, value))
        while len(s) > 1 and s[1][0] <= t_s - self.window_s:
            s.popleft()
        return value - s[0][1]


class _ValveWindow:
    """Per-valve cycle counts over ``window_s`` (None until a full window)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, np.ndarray]] = deque()

    def add(self, t_s: float, cycles: tuple[int, ...]) -> np.ndarray | None:
        now = np.asarray(cycles, dtype=np.int64)
        s = self._samples
        if s and (len(now) != len(s[-1][1]) or bool((now < s[-1][1]).any())):
            s.clear()  # another valve bar, or the PLC restarted its counters
        if not s or not np.array_equal(now, s[-1][1]):
            s.append((t_s, now))
        while len(s) > 1 and s[1][0] <= t_s - self.window_s:
            s.popleft()
        if t_s - s[0][0] < self.window_s:
            return None
        return now - s[0][1]


def neighbour_floor(ran: np.ndarray) -> np.ndarray:
    """(n,) int64: per valve, the lesser of its neighbours' cycles (its one
    neighbour's at the bar's ends): what a valve is judged against."""
    n = len(ran)
    lesser = np.zeros(n, dtype=np.int64)
    if n >= 2:
        lesser[1:-1] = np.minimum(ran[:-2], ran[2:])
        lesser[0], lesser[-1] = ran[1], ran[-2]
    return lesser


def valve_verdicts(
    ran: np.ndarray,
    min_cycles: int,
    weak_share: float,
    window_s: float,
    disabled: frozenset[int] = frozenset(),
) -> dict[str, Raised]:
    """``ran``: (n_valves,) int64 cycles over the window. A valve is judged only
    against neighbours that both (one at the bar's ends) ran >= ``min_cycles``;
    a valve disabled on purpose (calibration or engineer) is not judged."""
    n = len(ran)
    if n < 2:
        return {}
    lesser = neighbour_floor(ran)
    judged = lesser >= min_cycles
    if disabled:
        judged[[v for v in disabled if 0 <= v < n]] = False
    bad = judged & ((ran == 0) | (ran < weak_share * lesser))
    out = {}
    for v in np.flatnonzero(bad).tolist():
        what = "dead" if ran[v] == 0 else "weak"
        nb = " and ".join(f"valve {u} {int(ran[u])}" for u in (v - 1, v + 1) if 0 <= u < n)
        out[f"valve.{v}"] = Raised(
            "warning",
            f"valve {v} {what}: {int(ran[v])} cycles in the last {window_s:g} s "
            f"while its neighbours ran ({nb})",
        )
    return out


class AlarmEvaluator:
    """Turns successive ``Observation``s into the conditions that hold now."""

    def __init__(self, cfg: AlarmsSection) -> None:
        self.cfg = cfg
        self._misses = _Increase(cfg.deadline_window_s)
        w = cfg.counter_window_s
        self._trips, self._malformed = _Increase(w), _Increase(w)
        self._untimed, self._mismatch, self._dropped = _Increase(w), _Increase(w), _Increase(w)
        self._checked, self._unchecked = _Increase(w), _Increase(w)
        self._valves = _ValveWindow(cfg.valve_window_s)
        self._plc_held: dict[str, Raised] = {}
        self._valves_held: dict[str, Raised] = {}
        self._ever_linked = False
        self._link_tried_s: float | None = None  # the first look with the bridge started
        self._records = (0, 0)  # failed, written at the last look
        self._records_failing = False
        self._stamped = False  # a frame had its encoder count by the last look
        self._overfed = False  # belt_overfed held at the last look

    def evaluate(self, o: Observation) -> dict[str, Raised]:
        out: dict[str, Raised] = {}
        self._plc(o, out)
        if o.camera_problem:
            out["camera"] = Raised("critical", o.camera_problem)
        if o.loop_failure:
            out["frame_loop"] = Raised("critical", o.loop_failure)
        self._timebase(o, out)
        missed = self._misses.add(o.t_s, o.deadline_misses)
        if missed > self.cfg.deadline_misses_max:
            out["deadline_misses"] = Raised(
                "warning",
                f"deadline misses: {missed} in the last {self.cfg.deadline_window_s:g} s "
                f"(more than {self.cfg.deadline_misses_max}): pulses not sent in time, "
                "fragments left unsorted",
            )
        self._records_check(o, out)
        u = o.uncertainty
        if u is not None and u.share - u.baseline >= self.cfg.uncertainty_rise:
            out["model_uncertainty"] = Raised(
                "warning",
                f"model uncertainty rising: {u.share:.0%} of {u.detections} detections below "
                f"confidence {self.cfg.uncertain_below:g} over the last {u.frames} frames "
                f"(baseline {u.baseline:.0%}); model {o.model}",
            )
        self._belt_load(o, out)
        return out

    def _belt_load(self, o: Observation, out: dict[str, Raised]) -> None:
        """Raised at ``overfed_covered_share``, held down to 0.8 of it (a belt
        loaded near the limit does not flap); a block too empty to judge clears."""
        load = o.belt_load
        if load is None:
            return
        limit = self.cfg.overfed_covered_share
        floor = OVERFED_CLEAR * limit if self._overfed else limit
        self._overfed = load.judged and load.covered_share >= floor
        if self._overfed:
            out["belt_overfed"] = Raised(
                "warning",
                f"belt overfed: {load.covered_share:.0%} of the view covered over the last "
                f"{load.frames} frames (limit {limit:.0%}), {load.merged_share:.0%} of "
                f"{load.segments} segments look like touching pieces: touching pieces go to "
                "one bin together; slow the feeder",
            )

    def _plc(self, o: Observation, out: dict[str, Raised]) -> None:
        if not o.plc_started:
            return  # warming up (a first start compiles for tens of seconds): not lost
        if self._link_tried_s is None:
            self._link_tried_s = o.t_s
        if not o.plc_linked:
            lost = self._ever_linked or o.plc_error
            if lost or o.t_s - self._link_tried_s >= LINK_GRACE_S:
                why = f": {o.plc_error}" if o.plc_error else ""
                out["plc.link"] = Raised("critical", f"PLC link lost ({o.plc_where}){why}")
            out.update(self._plc_held)  # unknown while the link is down: last known
            out.update(self._valves_held)
            return
        self._ever_linked = True
        held: dict[str, Raised] = {}
        if o.estop:
            held["estop"] = Raised(
                "critical", f"E-stop pressed: circuit open (PLC {o.plc_where}, IR 4 bit 0)"
            )
        elif o.plc_state in (PackMLState.ABORTING, PackMLState.ABORTED):
            held["estop.reset"] = Raised(
                "warning", "E-stop released: the line stays Aborted until an operator resets it"
            )
        w = self.cfg.counter_window_s
        if (trips := self._trips.add(o.t_s, o.watchdog_trips)) > 0:
            held["plc.watchdog"] = Raised(
                "warning",
                f"PLC watchdog tripped {trips} time(s) in the last {w:g} s (IR 22, "
                f"PLC {o.plc_where}): the controller's heartbeat went stale, valves de-energised",
            )
        if (bad := self._malformed.add(o.t_s, o.rejected_malformed)) > 0:
            held["plc.malformed"] = Raised(
                "warning",
                f"PLC refused {bad} malformed write(s) in the last {w:g} s (IR 18, "
                f"PLC {o.plc_where}; reason in IR 12)",
            )
        self._plc_held = held
        out.update(held)
        if o.valve_cycles:
            ran = self._valves.add(o.t_s, o.valve_cycles)
            if ran is not None:
                c = self.cfg
                self._valves_held = valve_verdicts(
                    ran, c.valve_min_cycles, c.valve_weak_share, c.valve_window_s,
                    frozenset(o.valves_disabled),
                )  # fmt: skip
        out.update(self._valves_held)

    def _timebase(self, o: Observation, out: dict[str, Raised]) -> None:
        if not self._stamped:  # start-up: frames before the first trigger latch
            self._untimed = _Increase(self.cfg.counter_window_s)
        self._stamped = o.frames_stamped > 0
        untimed = self._untimed.add(o.t_s, o.frames_untimed)
        mism = self._mismatch.add(o.t_s, o.timebase_mismatches)
        if untimed or mism:
            why = f": {o.timebase_problem}" if o.timebase_problem else ""
            out["timebase"] = Raised(
                "warning",
                f"time base: {untimed} frame(s) without encoder count, {mism} trigger "
                f"mismatch(es) in the last {self.cfg.counter_window_s:g} s{why}",
            )
        stamped = self._checked.add(o.t_s, o.frames_stamped)
        unchecked = self._unchecked.add(o.t_s, o.timebase_unchecked)
        if stamped >= 100 and unchecked > stamped // 2:
            out["timebase.unchecked"] = Raised(
                "info",
                f"time base: {unchecked} of {stamped} frames in the last "
                f"{self.cfg.counter_window_s:g} s placed by their trigger unchecked: the PLC's "
                "encoder reads come too slowly to date a count (a lost camera trigger would "
                "go unseen)",
            )

    def _records_check(self, o: Observation, out: dict[str, Raised]) -> None:
        failed0, written0 = self._records
        if o.records_failed > failed0:
            self._records_failing = True
        elif o.records_written > written0:
            self._records_failing = False  # written since the last failure
        self._records = (o.records_failed, o.records_written)
        dropped = self._dropped.add(o.t_s, o.records_dropped)
        if self._records_failing or dropped:
            err = f"cannot write ({o.records_error})" if self._records_failing else "writer behind"
            out["records"] = Raised(
                "warning",
                f"sort records {o.records_where}: {err}; {dropped} record(s) dropped in the "
                f"last {self.cfg.counter_window_s:g} s",
            )


# ------------------------------------------------------------ on the line
def observe(line: SortingLine, uncertainty: UncertaintyListener) -> Observation:
    """One ``Observation`` of a running line (the evaluator thread)."""
    snap = line.snapshot()
    bridge = line.parts.bridge
    plc = bridge.snapshot()  # fresher than the snapshot's between frames
    bc = bridge.config
    where = (bc.serial_port or "") if bc.transport == "rtu" else f"{bc.host}:{bc.port}"
    cam = line.camera  # its first problem ("not opened yet") is not a failure
    failing = [c for c in line.loop.holds() if c.startswith("frame loop failing")]
    rec = line.records
    return Observation(
        t_s=time.monotonic(), plc_started=bridge.started, plc_linked=plc.connected,
        plc_where=where,
        plc_error=plc.last_error, plc_state=plc.state, estop=plc.estop,
        watchdog_trips=plc.plc_counters.get("watchdog_trips", 0),
        rejected_malformed=plc.plc_counters.get("rejected_malformed", 0),
        valve_cycles=plc.valve_cycles,
        valves_disabled=tuple(line.parts.params.geometry.valves.disabled_valves),
        camera_problem=cam.problem if cam.last_error else "",
        loop_failure=failing[0] if failing else "",
        frames_stamped=snap.timebase.frames_stamped, frames_untimed=snap.frames_untimed,
        timebase_mismatches=snap.timebase.mismatches,
        timebase_unchecked=snap.timebase.frames_unchecked,
        timebase_problem=snap.timebase.last_problem, deadline_misses=snap.deadline_misses,
        records_where="" if rec is None else rec.where,
        records_failed=0 if rec is None else rec.failed,
        records_written=0 if rec is None else rec.written,
        records_dropped=0 if rec is None else rec.dropped,
        records_error="" if rec is None else rec.last_error,
        uncertainty=uncertainty.reading, model=line.cfg.vision.model,
        belt_load=line.belt_load.reading,
    )  # fmt: skip
