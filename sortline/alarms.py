"""The line's alarm book (ISA-18.2 vocabulary): what is wrong, where, since when.

Each alarm has a stable key, a severity and a message naming the part. It is
*raised* when its condition appears (``count`` + 1, unacknowledged), stays
*active* while the condition holds (``last_seen`` moves, the message follows
the cause), is *cleared* when it goes away (kept, "returned to normal") and
*re-raised* if it comes back. Acknowledgement (who, when) belongs to one
occurrence. Every raise, clear and acknowledgement goes to a bounded journal.

Keys (``[alarms]`` sets the windows and thresholds):

=================== ======== ==================================================
key                 severity condition
=================== ======== ==================================================
plc.link            critical the bridge has no link to the PLC
estop               critical the PLC reports the E-stop circuit open
estop.reset         warning  E-stop released, the PLC still Aborted (needs Reset)
plc.watchdog        warning  the PLC's watchdog trips counter moved (window)
plc.malformed       warning  the PLC refused malformed writes (window)
camera              critical ``CameraLink.problem`` (names the camera)
frame_loop          critical frame-loop cycles keep failing (the line holds)
timebase            warning  frames without encoder count / trigger mismatches (window)
deadline_misses     warning  more than ``deadline_misses_max`` in ``deadline_window_s``
records             warning  the sort-record writer fails, or drops (window)
model_uncertainty   warning  share of detections below ``uncertain_below`` well
                             above its running baseline
belt_overfed        warning  share of the view covered by fragments at or above
                             ``overfed_covered_share`` over ``load_window_frames``
                             (``sortline.belt_load``; cleared below 0.8 of it)
mqtt.link           warning  the MQTT broker of the Sparkplug B node is unreachable
                             (``sortline.sparkplug``; data held back, bounded)
valve.<v>           warning  valve v (PLC numbering, IR 100+2v) ran no (dead) or
                             few (weak) cycles over ``valve_window_s`` while
                             its neighbours kept running
=================== ======== ==================================================

Threads: the frame loop only feeds ``UncertaintyListener`` and the line's
``BeltLoadListener`` (O(1) counters per cycle); a small evaluator thread
(``attach_alarms``) reads what the line publishes every ``period_s`` and
updates the book; the API reads the book. While the PLC link is down the
PLC-derived alarms keep their last state.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from sortline.alarm_rules import (
    AlarmEvaluator,
    Observation,
    Raised,
    Severity,
    UncertaintyListener,
    UncertaintyReading,
    observe,
)

if TYPE_CHECKING:
    from sortline.runtime import SortingLine

__all__ = [
    "AlarmBook",
    "AlarmEvaluator",
    "AlarmEvent",
    "AlarmView",
    "AlarmsView",
    "NothingToAcknowledgeError",
    "Observation",
    "Raised",
    "UncertaintyListener",
    "UncertaintyReading",
    "UnknownAlarmError",
    "attach_alarms",
]

log = logging.getLogger("sortline.alarms")

_Event = Literal["raised", "cleared", "acknowledged"]
STATIC_KEYS = frozenset(
    {
        "plc.link", "estop", "estop.reset", "plc.watchdog", "plc.malformed", "camera",
        "frame_loop", "timebase", "timebase.unchecked", "deadline_misses", "records",
        "model_uncertainty", "belt_overfed",
    }
)  # fmt: skip
_RANK = {"critical": 0, "warning": 1, "info": 2}


# ----------------------------------------------------------------- the book
_FROZEN = ConfigDict(frozen=True)


class AlarmView(BaseModel):
    """One alarm as it stands (its latest occurrence). Times: Unix seconds."""

    model_config = _FROZEN
    key: str
    severity: Severity
    message: str
    state: Literal["active", "cleared"]
    first_seen_unix_s: float  # first raised, ever
    raised_unix_s: float  # this occurrence
    last_seen_unix_s: float  # condition last observed
    cleared_unix_s: float | None
    count: int  # times raised
    acknowledged: bool
    acked_by: str | None
    acked_unix_s: float | None


class AlarmEvent(BaseModel):
    model_config = _FROZEN
    t_unix_s: float
    key: str
    event: _Event
    severity: Severity
    message: str
    count: int
    who: str | None = None


class AlarmsView(BaseModel):
    """``active``: most severe first, then oldest; ``cleared``: alarms raised
    before and not active now; ``history``: the journal, oldest first."""

    model_config = _FROZEN
    active: list[AlarmView]
    cleared: list[AlarmView]
    history: list[AlarmEvent]


class UnknownAlarmError(KeyError):
    """No such alarm key."""


class NothingToAcknowledgeError(RuntimeError):
    """The alarm is not active, or its occurrence is acknowledged already."""


@dataclasses.dataclass(slots=True)
class _Alarm:
    key: str
    severity: Severity
    message: str
    first_seen: float
    raised: float
    last_seen: float
    cleared: float | None = None
    count: int = 1
    acked_by: str | None = None
    acked: float | None = None

    def view(self) -> AlarmView:
        return AlarmView(
            key=self.key, severity=self.severity, message=self.message,
            state="active" if self.cleared is None else "cleared",
            first_seen_unix_s=self.first_seen, raised_unix_s=self.raised,
            last_seen_unix_s=self.last_seen, cleared_unix_s=self.cleared, count=self.count,
            acknowledged=self.acked is not None, acked_by=self.acked_by, acked_unix_s=self.acked,
        )  # fmt: skip


class AlarmBook:
    """Alarms by key and their journal (``history`` events); thread-safe."""

    def __init__(self, history: int = 1000, n_valves: int = 0) -> None:
        self.n_valves = n_valves
        self._alarms: dict[str, _Alarm] = {}
        self._journal: deque[AlarmEvent] = deque(maxlen=history)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # more conditions, merged into each evaluation (plant links: mqtt.link)
        self.sources: list[Callable[[], Mapping[str, Raised]]] = []

    def update(self, conditions: Mapping[str, Raised], now: float | None = None) -> None:
        """The conditions that hold now: raise or refresh them, clear the rest."""
        now = time.time() if now is None else now
        with self._lock:
            for key, (severity, message) in conditions.items():
                self._raise(key, severity, message, now)
            for a in self._alarms.values():
                if a.cleared is None and a.key not in conditions:
                    a.cleared = now
                    self._note(a, "cleared", now)
                    log.warning("alarm cleared: %s", a.key)

    def _raise(self, key: str, severity: Severity, message: str, now: float) -> None:
        a = self._alarms.get(key)
        if a is not None and a.cleared is None:
            a.last_seen, a.message, a.severity = now, message, severity
            return
        if a is None:
            a = self._alarms[key] = _Alarm(key, severity, message, now, now, now, count=0)
        a.severity, a.message, a.raised, a.last_seen, a.cleared = severity, message, now, now, None
        a.count += 1
        a.acked_by = a.acked = None
        self._note(a, "raised", now)
        log.warning("alarm raised (%s): %s: %s", severity, key, message)

    def _note(self, a: _Alarm, event: _Event, now: float, who: str | None = None) -> None:
        ev = AlarmEvent.model_construct(
            t_unix_s=now, key=a.key, event=event, severity=a.severity,
            message=a.message, count=a.count, who=who,
        )  # fmt: skip
        self._journal.append(ev)

    def known(self, key: str) -> bool:
        if key in STATIC_KEYS or key in self._alarms:
            return True
        v = key.removeprefix("valve.")
        return v != key and v.isdigit() and int(v) < self.n_valves and str(int(v)) == v

    def acknowledge(self, key: str, who: str, now: float | None = None) -> AlarmView:
        now = time.time() if now is None else now
        with self._lock:
            a = self._alarms.get(key)
            if a is None:
                if not self.known(key):
                    raise UnknownAlarmError(key)
                raise NothingToAcknowledgeError(f"{key}: not active (never raised)")
            if a.cleared is not None:
                raise NothingToAcknowledgeError(f"{key}: not active (cleared)")
            if a.acked is not None:
                raise NothingToAcknowledgeError(f"{key}: acknowledged already by {a.acked_by}")
            a.acked_by, a.acked = who, now
            self._note(a, "acknowledged", now, who)
            log.warning("alarm acknowledged by %s: %s", who, key)
            return a.view()

    def get(self, key: str) -> AlarmView | None:
        with self._lock:
            a = self._alarms.get(key)
            return None if a is None else a.view()

    def view(self) -> AlarmsView:
        with self._lock:
            alarms = [a.view() for a in self._alarms.values()]
            history = list(self._journal)
        active = sorted(
            (a for a in alarms if a.state == "active"),
            key=lambda a: (_RANK[a.severity], a.raised_unix_s),
        )
        cleared = sorted((a for a in alarms if a.state == "cleared"), key=lambda a: a.key)
        return AlarmsView.model_construct(active=active, cleared=cleared, history=history)

    # ------------------------------------------------------------ evaluator
    def run_every(self, period_s: float, evaluate: Callable[[], Mapping[str, Raised]]) -> None:
        """Update the book from ``evaluate`` every ``period_s`` on a thread of its own."""

        def run() -> None:
            failures = 0
            while not self._stop.wait(period_s):
                try:
                    conditions = dict(evaluate())
                    for source in self.sources:
                        conditions.update(source())
                    self.update(conditions)
                    failures = 0
                except Exception:  # the evaluator outlives a bad reading, and says so
                    failures += 1
                    if failures in (1, 100) or failures % 10000 == 0:
                        log.exception("alarm evaluation failed (%d in a row)", failures)

        self._thread = threading.Thread(target=run, name="alarms", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)


# ------------------------------------------------------ model uncertainty
def attach_alarms(line: SortingLine) -> AlarmBook:
    """The line's alarm book: attaches the uncertainty listener to the frame
    loop and starts the evaluator thread; ``AlarmBook.close()`` stops it."""
    cfg = line.cfg.alarms
    book = AlarmBook(cfg.history, line.cfg.valves.n_valves)
    listener = UncertaintyListener(
        cfg.uncertain_below, cfg.uncertainty_window_frames, cfg.uncertainty_rise,
        cfg.uncertainty_min_detections,
    )  # fmt: skip
    line.loop.attach(listener)
    evaluator = AlarmEvaluator(cfg)
    book.run_every(cfg.period_s, lambda: evaluator.evaluate(observe(line, listener)))
    return book
