"""Prometheus metrics of one line (``GET /metrics``, text format 0.0.4).

Two halves, neither of which can hold up the real-time loop:
- ``MetricsListener`` hangs off the frame loop; its ``on_cycle`` does bucket
  and counter increments only (frame latency, pulses by fraction), each under
  a lock held for a few additions;
- ``LineCollector`` runs in the scraping thread and reads what is already
  published: the line's ``StatusSnapshot``, the listener's counts and the
  bridge's ack-latency histogram (``plc.bridge_latency``).
Each line has its own ``CollectorRegistry`` (never the global one): two lines
in one process, or a line per test, do not mix.

Names: ``sortline_`` prefix, base units (seconds, metres, ratios), ``_total``
on counters, ``line="<[line] name>"`` on every sample. Where our counters
already live in our own objects they are exported as they are, never copied
into prometheus_client's instruments.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from plc.bridge_latency import HistogramSnapshot, LatencyHistogram
from plc.regmap import PackMLState
from sortline.listeners import Cycle
from sortline.status import StatusSnapshot

if TYPE_CHECKING:
    from sortline.runtime import SortingLine

__all__ = [
    "CONTENT_TYPE",
    "FRAME_BUCKETS_S",
    "LineCollector",
    "LineMetrics",
    "MetricsListener",
    "attach_metrics",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# arrival -> pulses handed to the bridge: a few ms on a healthy line, one
# frame period (10..33 ms) is the frame deadline
FRAME_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.033, 0.05, 0.1, 0.25, 0.5, 1.0)
UNKNOWN_FRACTION = "unknown"  # a pulse whose fraction id the recipe does not name


class MetricsListener:
    """Frame-loop listener: frame latency (s) and pulses handed to the PLC per
    output fraction (named by the recipe in force at that cycle)."""

    def __init__(self, fraction_names: Callable[[], Sequence[str]]) -> None:
        self.frame_latency = LatencyHistogram(FRAME_BUCKETS_S)
        self._fraction_names = fraction_names
        self._by_fraction: dict[str, int] = {}
        self._lock = threading.Lock()

    def on_cycle(self, cycle: Cycle) -> None:
        self.frame_latency.observe(cycle.latency_ms * 1e-3)
        if not len(cycle.pulses):
            return
        names = self._fraction_names()
        n = len(names)
        got = [names[f] if 0 <= f < n else UNKNOWN_FRACTION for f in cycle.pulses.fraction.tolist()]
        with self._lock:
            for name in got:
                self._by_fraction[name] = self._by_fraction.get(name, 0) + 1

    def pulses_by_fraction(self) -> dict[str, int]:
        """Pulses handed to the bridge since start, per fraction name (a copy)."""
        with self._lock:
            return dict(self._by_fraction)

    def close(self) -> None:
        pass


class LineCollector:
    """Builds the metric families of one line at each scrape."""

    def __init__(self, line: SortingLine, listener: MetricsListener) -> None:
        self.line = line
        self.listener = listener

    def collect(self) -> Iterator[Metric]:
        snap = self.line.snapshot()
        lab = [snap.line]
        yield from self._frames(snap, lab)
        yield from self._objects(snap, lab)
        yield from self._belt_load(snap, lab)
        yield from self._pulses(snap, lab)
        yield from self._state(snap, lab)
        yield from self._links(snap, lab)
        yield from self._sensor(snap, lab)
        yield from self._plant(snap, lab)

    # ----------------------------------------------------------- families
    def _frames(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        yield _counter(
            "frames_processed", "Frames processed by the real-time loop.", lab, snap.frames
        )
        lost, untimed = snap.camera.frames_lost, snap.frames_untimed
        dropped = CounterMetricFamily(
            "sortline_frames_dropped",
            "Frames never processed: lost (camera counter gaps), bad (malformed), "
            "untimed (no encoder count).",
            labels=["line", "reason"],
        )
        for reason, n in (
            ("lost", lost),
            ("bad", snap.frames_dropped - lost - untimed),
            ("untimed", untimed),
        ):
            dropped.add_metric([*lab, reason], n)
        yield dropped
        yield _counter(
            "cycle_errors", "Frame-loop cycles that failed with an exception.", lab,
            self.line.loop.cycle_errors,
        )  # fmt: skip
        yield _histogram(
            "frame_latency_seconds",
            "Frame latency: arrival to pulses handed to the PLC bridge.",
            lab, self.listener.frame_latency.snapshot(),
        )  # fmt: skip
        yield _gauge("live_tracks", "Tracks alive after the last frame.", lab, snap.live_tracks)
        yield _gauge(
            "start_time_seconds", "When the line was built (Unix time).", lab,
            self.line.started_unix_s,
        )  # fmt: skip

    def _objects(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        c = snap.controller
        yield _counter("objects_seen", "Confirmed tracks decided.", lab, c.get("objects_seen", 0))
        yield _counter(
            "objects_targeted", "Objects the recipe sends to an output fraction.", lab,
            c.get("objects_targeted", 0),
        )  # fmt: skip
        by_class = CounterMetricFamily(
            "sortline_objects_by_class",
            "Confirmed tracks by class, counted when the track ends.",
            labels=["line", "class"],
        )
        for name, n in snap.composition.items():
            by_class.add_metric([*lab, name], n)
        yield by_class
        misses = CounterMetricFamily(
            "sortline_deadline_misses",
            "Actuations that could not meet their deadline: not scheduled "
            "(stage=scheduler) or refused before sending (stage=bridge).",
            labels=["line", "stage"],
        )
        misses.add_metric([*lab, "scheduler"], c.get("deadline_misses", 0))
        misses.add_metric([*lab, "bridge"], snap.plc.pulses_late)
        yield misses

    def _belt_load(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        b = snap.belt_load
        if b is None:
            return
        yield _counter("segments", "Segments vision found (fragments seen per frame).", lab,
                       b.segments)  # fmt: skip
        yield _counter(
            "segments_merged", "Segments flagged as probable merges (touching pieces).", lab,
            b.segments_merged,
        )  # fmt: skip
        if b.merged_share is not None:
            yield _gauge(
                "segments_merged_ratio",
                "Share of segments flagged as probable merges over the last window of frames "
                "(the belt's load: touching pieces go to one bin).",
                lab, b.merged_share,
            )  # fmt: skip
        if b.covered_share is not None:
            yield _gauge(
                "belt_covered_ratio",
                "Mean share of the camera's view covered by fragments over the last window.",
                lab, b.covered_share,
            )  # fmt: skip

    def _pulses(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        p = snap.plc
        yield _counter(
            "pulses_submitted", "Pulses handed to the PLC bridge.", lab, p.pulses_submitted
        )
        yield _counter(
            "pulses_sent", "Pulse records written to the PLC's ring (resends included).", lab,
            p.pulses_sent,
        )  # fmt: skip
        fates = CounterMetricFamily(
            "sortline_pulses_settled",
            "Submitted pulses by fate: acked (taken by the PLC), late (refused by the "
            "bridge), rejected (by the PLC), invalid, overflow (queue full), stale "
            "(queued across a PLC restart).",
            labels=["line", "fate"],
        )
        for fate, n in (
            ("acked", p.pulses_acked),
            ("late", p.pulses_late),
            ("rejected", p.pulses_rejected_by_plc),
            ("invalid", p.pulses_invalid),
            ("overflow", p.pulses_overflow),
            ("stale", p.pulses_stale),
        ):
            fates.add_metric([*lab, fate], n)
        yield fates
        counts = dict.fromkeys(self.line.parts.recipe.fraction_names, 0)
        counts.update(self.listener.pulses_by_fraction())
        by_fraction = CounterMetricFamily(
            "sortline_pulses_by_fraction",
            "Pulses handed to the PLC bridge by output fraction.",
            labels=["line", "fraction"],
        )
        for name, n in counts.items():
            by_fraction.add_metric([*lab, name], n)
        yield by_fraction
        yield _histogram(
            "pulse_ack_latency_seconds",
            "Per batch of ring records: write request to the PLC acknowledgement settling it.",
            lab, self.line.parts.bridge.ack_latency.snapshot(),
        )  # fmt: skip

    def _state(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        yield _gauge("line_state_code", "Line state, PackML code.", lab, snap.state_code)
        states = GaugeMetricFamily(
            "sortline_line_state",
            "1 for the line's current PackML state, 0 for the others.",
            labels=["line", "state"],
        )
        for s in PackMLState:
            states.add_metric([*lab, s.name], float(s.name == snap.state))
        yield states

    def _links(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        p, cam = snap.plc, snap.camera
        yield _gauge("plc_connected", "1 while the PLC link is up.", lab, p.connected)
        yield _gauge("plc_estop", "1 while the PLC reports the E-stop.", lab, p.estop)
        if p.encoder_tick is not None:
            yield _gauge(
                "plc_encoder_ticks", "Belt encoder count last read (uint32, wraps).", lab,
                p.encoder_tick,
            )  # fmt: skip
        yield _gauge(
            "belt_speed_meters_per_second", "Belt speed measured by the PLC.", lab,
            p.speed_mm_s * 1e-3,
        )  # fmt: skip
        yield _counter("plc_reconnects", "PLC link re-established.", lab, p.reconnects)
        yield _counter("plc_read_errors", "Failed PLC status reads.", lab, p.read_errors)
        yield _gauge("camera_connected", "1 while the camera delivers.", lab, cam.connected)
        yield _counter("camera_reconnects", "Camera reopened after a stall.", lab, cam.reconnects)
        tb = snap.timebase
        yield _counter(
            "timebase_mismatches", "Camera and triggers re-matched (a lost or extra frame).", lab,
            tb.mismatches,
        )  # fmt: skip
        yield _counter(
            "timebase_frames_unchecked",
            "Frames placed by their trigger unchecked: encoder reads too slow to date.", lab,
            tb.frames_unchecked,
        )  # fmt: skip
        err_mm = tb.error_mm_p99
        if err_mm is not None:
            yield _gauge(
                "timebase_error_p99_meters",
                "p99 of the frames' encoder-count error, as belt travel.",
                lab, err_mm * 1e-3,
            )  # fmt: skip

    def _sensor(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        """The induction bar's reader, when ``[sensor]`` is enabled."""
        b = snap.sensor
        if b is None:
            return
        yield _gauge("sensor_receiving", "1 while the induction bar's packets arrive.", lab,
                     b.receiving)  # fmt: skip
        yield _gauge("sensor_fault", "1 while the induction bar reports a fault.", lab, b.fault)
        yield _counter("sensor_packets", "Induction bar packets accepted.", lab, b.packets_ok)
        yield _counter("sensor_packets_lost", "Induction bar packets lost (sequence gaps).", lab,
                       b.packets_lost)  # fmt: skip
        yield _counter("sensor_rows_missing", "Induction bar rows missing by encoder count.",
                       lab, b.rows_missing)  # fmt: skip
        refused = CounterMetricFamily(
            "sortline_sensor_packets_refused",
            "Induction bar packets refused, by reason.",
            labels=["line", "reason"],
        )
        for reason, n in sorted(b.packets_refused.items()):
            refused.add_metric([*lab, reason], float(n))
        yield refused

    def _plant(self, snap: StatusSnapshot, lab: list[str]) -> Iterator[Metric]:
        """Virtual plant's ground truth, scored for the recipe in force (a
        recipe switch rescores: gauges, not counters); absent on a real line."""
        q = snap.quality
        for name, doc, value in (
            ("plant_purity_ratio", "Purity of the target fractions", q.purity),
            ("plant_recovery_ratio", "Recovery of the target classes", q.recovery),
            ("plant_co_ejection_ratio", "Non-targets ejected with targets", q.co_ejection_rate),
            ("plant_objects_ejected", "Targeted objects in their bin", q.objects_ejected),
        ):
            if value is not None:
                yield _gauge(name, doc + " (virtual plant's ground truth).", lab, value)


def _counter(name: str, doc: str, lab: list[str], value: float) -> CounterMetricFamily:
    c = CounterMetricFamily(f"sortline_{name}", doc, labels=["line"])
    c.add_metric(lab, float(value))
    return c


def _gauge(name: str, doc: str, lab: list[str], value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(f"sortline_{name}", doc, labels=["line"])
    g.add_metric(lab, float(value))
    return g


def _histogram(name: str, doc: str, lab: list[str], h: HistogramSnapshot) -> HistogramMetricFamily:
    m = HistogramMetricFamily(f"sortline_{name}", doc, labels=["line"])
    buckets = [(floatToGoString(b), n) for b, n in zip(h.upper_s, h.cumulative, strict=False)]
    buckets.append(("+Inf", h.count))
    m.add_metric(lab, buckets, sum_value=h.sum_s)
    return m


class LineMetrics:
    """What ``GET /metrics`` needs: a private registry and whether it is open."""

    def __init__(self, collector: LineCollector, enabled: bool) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.listener = collector.listener
        self.enabled = enabled

    def render(self) -> bytes:
        """The exposition text (format 0.0.4, ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


def attach_metrics(line: SortingLine) -> LineMetrics:
    """Attach the metrics listener to ``line.loop``; the route's side of it."""
    listener = MetricsListener(lambda: line.parts.recipe.fraction_names)
    line.loop.attach(listener)
    return LineMetrics(LineCollector(line, listener), line.cfg.api.open_metrics)
