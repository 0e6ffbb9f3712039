"""The induction bar: a row of eddy-current coils across the belt, in the plant.

Physics (one coil, one fragment). A coil driven at a frequency f (each of
``frequencies_hz``) sees a conducting, permeable piece below it as a change of
its impedance. For a flat
layer of conductivity sigma, relative permeability mu_r and thickness t the
change is proportional to the layer's reflection coefficient at the field's
transverse wavenumber lambda (Dodd & Deeds, J. Appl. Phys. 39, 1968):

    a1 = sqrt(lambda^2 + j omega mu0 mu_r sigma)
    R  = (mu_r^2 lambda^2 - a1^2) (1 - e^{-2 a1 t})
         / ((mu_r lambda + a1)^2 - (mu_r lambda - a1)^2 e^{-2 a1 t})

which holds both where t is far below the skin depth delta = 1/sqrt(pi f mu0
mu_r sigma) (a thin sheet: R ~ -j beta / (1 + j beta), beta = omega mu0 sigma t
/ 2 lambda) and far above it (a half-space). The piece's own size caps its
eddy loops: lambda = sqrt(lambda_coil^2 + (3.83 / a)^2), with lambda_coil = 1 /
coil radius and a = half the piece's smaller extent (3.83: the first zero of
J1, the lowest current mode of a disc). Reported per channel: in-phase
(reactive) = Re R, quadrature (resistive) = -Im R, times ``gain`` and the
coupling exp(-2 lambda_coil h) of the piece's height h above the coil (the
lift-off plus up to 4 mm for a bent piece). ``gain`` is the response seen by
the reference coil (15 mm radius at 10 mm lift-off, the default bar), so the
coupling is exp(-2 lambda_coil (h - lift_off)) exp(-2 (lambda_coil lift_off -
lambda_ref 10 mm)): exactly the first factor on the default bar, and a smaller
coil, whose field falls off faster, reads a piece at the same lift-off weaker
(a 7.5 mm coil at 10 mm: 0.26 of the reference; session 13, for bars of
another coil size, before which their lift-off cost nothing).
Non-ferrous metals read negative in-phase (their eddy currents oppose the
field) with a phase set by sigma t: copper about 169 deg, aluminium 159 deg,
brass 144 deg, stainless (weak) 93 deg at 5 kHz and 1 mm; ferrous steel reads
strongly positive in-phase (reactive, magnetisation). Materials and sources:
``sim/plant/materials.py`` (``ELECTRICAL``).

Several frequencies. A multi-frequency bar drives every coil at each of
``frequencies_hz`` at once (as multi-frequency eddy-current instruments do) and
reports in-phase and quadrature per coil and frequency, from the same R with
omega = 2 pi f: the materials do not change, only what is read of them. For a
sheet thinner than the skin depth delta = 1 / sqrt(pi f mu0 mu_r sigma) the
phase follows beta = omega mu0 sigma t / 2 lambda alone (sigma x t: a thick
brass piece and a thin copper one read alike); at a frequency where the piece
is several skin depths thick it reads as a half-space, R = (mu_r lambda - a1) /
(mu_r lambda + a1), whose phase depends on sigma alone (copper delta 0.30 mm,
brass 0.56 mm, aluminium 0.41 mm, stainless 1.9 mm at 50 kHz). Row layout:
value index f x channels + c (frequency-major); every frequency has its own
noise and baseline streams, so frequency 0 of a multi-frequency bar reads
exactly what a single-frequency bar of the same seed reads.

Geometry. Coil c sits at x = x_first_mm + (c + 0.5) pitch_mm on the bar line
y = y_bar_mm (belt y of the camera's frame: negative is upstream). Its
sensitivity is a Gaussian of sigma ``coil_radius_mm`` around it, normalised to
1 over the belt plane: a channel integrates response x overlap of the piece's
footprint (the plant's own footprint samples) with that Gaussian. Then
crosstalk (each channel picks up ``crosstalk`` of both neighbours), a baseline
per channel that drifts (slow sinusoid plus random walk), an optional metal
staple stuck in the belt that passes once per belt loop, and white noise.

Rows are sampled every ``every_ticks`` encoder counts (the counts that are
multiples of it), with the fragments where the belt carried them at that count.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from core.sensor_rows import SensorRows
from sim.plant.materials import ELECTRICAL, Electrical

__all__ = [
    "FragmentEM",
    "InductionBar",
    "InductionSensor",
    "channel_weights",
    "layer_response",
    "material_em",
]

MU0 = 4e-7 * math.pi
MAX_FREQUENCIES = 2  # what the packet and the fusion features carry
_BESSEL_J1_ZERO = 3.8317
_NEAR_SIGMAS = 3.5
# ``gain`` is the response the reference coil reads: 15 mm radius at 10 mm lift-off
_COIL_REF_MM = 15.0
_LIFT_OFF_REF_MM = 10.0
_LAM_REF = 1e3 / _COIL_REF_MM


@dataclasses.dataclass(frozen=True, slots=True)
class InductionBar:
    """The bar and its electronics (lengths mm, see the module doc).

    stuck_x_mm: across-belt position of a steel staple stuck in the belt
    (None: a clean belt); it passes the bar every ``belt_loop_mm`` of travel.
    drift_amp: amplitude of each channel's slow baseline swing, sensor units;
    drift_walk: random-walk sigma of the baseline per sqrt(second).
    """

    channels: int = 32
    pitch_mm: float = 31.25
    x_first_mm: float = 0.0
    y_bar_mm: float = -300.0
    every_ticks: int = 50
    frequencies_hz: tuple[float, ...] = (5000.0,)
    coil_radius_mm: float = 15.0
    lift_off_mm: float = 10.0
    gain: float = 1000.0
    crosstalk: float = 0.06
    noise: float = 3.0
    drift_amp: float = 15.0
    drift_walk: float = 2.0
    drift_period_s: float = 120.0
    belt_loop_mm: float = 24000.0
    stuck_x_mm: float | None = None
    stuck_u_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.channels < 1 or self.every_ticks < 1:
            raise ValueError(
                f"InductionBar: channels {self.channels} and every_ticks {self.every_ticks} "
                "must be >= 1"
            )
        f = self.frequencies_hz
        if not 1 <= len(f) <= MAX_FREQUENCIES or not all(x > 0 for x in f) or len(set(f)) < len(f):
            raise ValueError(
                f"InductionBar.frequencies_hz {f}: 1..{MAX_FREQUENCIES} distinct values > 0 needed"
            )
        for name in ("pitch_mm", "coil_radius_mm", "gain", "belt_loop_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"InductionBar.{name} must be > 0, got {getattr(self, name)}")
        for name in ("lift_off_mm", "crosstalk", "noise", "drift_amp", "drift_walk"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"InductionBar.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def frequency_hz(self) -> float:
        """The first (lowest-index) frequency: a single-frequency bar's only one."""
        return self.frequencies_hz[0]

    @property
    def values_per_row(self) -> int:
        """Values per row and component: channels x frequencies (frequency-major)."""
        return self.channels * len(self.frequencies_hz)

    @property
    def coil_x_mm(self) -> np.ndarray:
        """(C,) float64 across-belt centre of each coil."""
        return self.x_first_mm + (np.arange(self.channels) + 0.5) * self.pitch_mm


def layer_response(
    sigma_s_m: float, mu_r: float, thick_mm: float, lam_per_m: float, frequency_hz: float
) -> complex:
    """Reflection coefficient R of a conducting layer (module doc); 0 for sigma 0, mu_r 1."""
    if sigma_s_m <= 0 and mu_r == 1.0:
        return 0j
    omega = 2 * math.pi * frequency_hz
    a1 = np.sqrt(complex(lam_per_m**2, omega * MU0 * mu_r * sigma_s_m))
    e = np.exp(-2 * a1 * thick_mm * 1e-3)
    ml = mu_r * lam_per_m
    return complex(((ml**2 - a1**2) * (1 - e)) / ((ml + a1) ** 2 - (ml - a1) ** 2 * e))


@dataclasses.dataclass(frozen=True, slots=True)
class FragmentEM:
    """What the bar sees of one fragment: responses (complex, before coupling,
    one per bar frequency), coupling factor of its height, and a PCB's patch
    pattern (``fill`` < 1: the share of the footprint that conducts, in stripes
    of ``patch_mm``)."""

    responses: tuple[complex, ...]
    coupling: float
    fill: float = 1.0
    patch_mm: float = 8.0
    patch_phase: tuple[float, float] = (0.0, 0.0)

    @property
    def response(self) -> complex:
        """The response at the bar's first frequency."""
        return self.responses[0]

    @property
    def silent(self) -> bool:
        return all(r == 0j for r in self.responses)


def _draw(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    lo, hi = lo_hi
    return float(lo if hi <= lo else rng.uniform(lo, hi))


def material_em(
    bar: InductionBar,
    class_name: str,
    kind: str,
    length_mm: float,
    width_mm: float,
    rng: np.random.Generator,
) -> FragmentEM:
    """Draw one fragment's electrical make-up (``ELECTRICAL``) and its response."""
    key = "battery_pouch" if class_name == "battery" and kind == "pouch" else class_name
    el: Electrical | None = ELECTRICAL.get(key)
    if el is None:
        raise ValueError(f"no electrical properties for class {class_name!r}")
    sigma, mu_r = _draw(rng, el.sigma_s_m), _draw(rng, el.mu_r)
    thick = _draw(rng, el.thick_mm)
    if kind == "wire":  # a round conductor: its diameter, not a sheet's thickness
        thick = 0.8 * width_mm
    a_mm = max(min(length_mm, width_mm) / 2.0, 0.5)
    lam_coil = 1e3 / bar.coil_radius_mm
    lam = math.hypot(lam_coil, _BESSEL_J1_ZERO * 1e3 / a_mm)
    resp = tuple(layer_response(sigma, mu_r, thick, lam, f) for f in bar.frequencies_hz)
    height = bar.lift_off_mm + float(rng.uniform(0.0, 4.0))  # bent pieces stand proud
    coupling = math.exp(-2 * lam_coil * (height - bar.lift_off_mm) * 1e-3) * math.exp(
        -2 * (lam_coil * bar.lift_off_mm - _LAM_REF * _LIFT_OFF_REF_MM) * 1e-3
    )  # the coil's own lift-off against the reference coil's, which ``gain`` is of
    fill = _draw(rng, el.fill)
    phase = (float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0, 2 * np.pi)))
    return FragmentEM(resp, coupling, fill, float(rng.uniform(5.0, 12.0)), phase)


def _patch(em: FragmentEM, fx: np.ndarray, fy: np.ndarray, angle_rad: float) -> np.ndarray:
    """(P,) 0/1 conducting share at footprint samples (1 everywhere unless fill < 1),
    fixed to the piece's own frame so it turns with it."""
    if em.fill >= 1.0:
        return np.ones(fx.shape[0])
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    lx, ly = c * fx + s * fy, -s * fx + c * fy
    k = 2 * math.pi / em.patch_mm
    field = np.sin(k * lx + em.patch_phase[0]) * np.sin(0.7 * k * ly + em.patch_phase[1])
    thr = np.quantile(field, 1.0 - em.fill) if field.size > 1 else -1.0
    return (field >= thr).astype(np.float64)


def channel_weights(
    bar: InductionBar, px_mm: np.ndarray, py_mm: np.ndarray, area_mm2: np.ndarray
) -> np.ndarray:
    """(C,) overlap of footprint samples (belt mm, each of ``area_mm2``) with every
    coil's normalised Gaussian sensitivity: 1 for a piece covering a coil."""
    s = bar.coil_radius_mm
    wy = area_mm2 * np.exp(-0.5 * ((py_mm - bar.y_bar_mm) / s) ** 2) / (2 * math.pi * s * s)
    out = np.zeros(bar.channels)
    keep = wy > 1e-9
    if not keep.any():
        return out
    px, wy = px_mm[keep], wy[keep]
    cx = bar.coil_x_mm
    lo = int(np.searchsorted(cx, px.min() - _NEAR_SIGMAS * s))
    hi = int(np.searchsorted(cx, px.max() + _NEAR_SIGMAS * s))
    if hi <= lo:
        return out
    dx = (px[:, None] - cx[None, lo:hi]) / s
    out[lo:hi] = wy @ np.exp(-0.5 * dx * dx)
    return out


class PlantView(Protocol):
    """What the bar reads of the plant (``VirtualPlant``)."""

    @property
    def travel_mm(self) -> float: ...

    @property
    def now_s(self) -> float: ...

    @property
    def tick_unwrapped(self) -> int: ...

    def footprints_near(
        self, y_lo_mm: float, y_hi_mm: float
    ) -> list[tuple[int, str, str, float, float, float, float, np.ndarray, np.ndarray, float]]:
        """Live fragments reaching into y_lo..y_hi now: (id, class, kind, length mm,
        width mm, x, y, foot_x (P,), foot_y (P,), angle rad)."""
        ...


class InductionSensor:
    """Samples the bar as the plant moves (``after_move``); ``drain`` hands the rows over.

    mm_per_tick, encoder_start: the plant's encoder; foot_area_mm2: the area
    one footprint sample stands for; seed: its own random streams (the
    plant's are left alone, so a scene renders the same with or without it).
    """

    def __init__(
        self,
        bar: InductionBar,
        mm_per_tick: float,
        encoder_start: int,
        foot_area_mm2: float,
        seed: int,
    ) -> None:
        self.bar = bar
        self.mm_per_tick = mm_per_tick
        self.encoder_start = encoder_start
        self.foot_area_mm2 = foot_area_mm2
        self.seed = seed
        # one noise and one baseline stream per frequency (frequency 0's are a
        # single-frequency bar's: its rows do not change when a frequency is added)
        self._rngs: list[np.random.Generator] = []
        offset, phase = [], []
        for f in range(len(bar.frequencies_hz)):
            key = [seed, 17] if f == 0 else [seed, 17, 1000 + f]
            rng_noise, rng_base = (
                np.random.default_rng(s) for s in np.random.SeedSequence(key).spawn(2)
            )
            self._rngs.append(rng_noise)
            offset.append(rng_base.normal(0, 20.0, (2, bar.channels)))
            phase.append(rng_base.uniform(0, 2 * np.pi, (2, bar.channels)))
        self._offset = np.concatenate(offset, axis=1)  # (2, F x C)
        self._phase = np.concatenate(phase, axis=1)
        self._walk = np.zeros_like(self._offset)
        self._last_s: float | None = None
        self._em: dict[int, FragmentEM] = {}
        # fragment id -> its whole footprint crossed the bar on the belt (False: it
        # was fed with part of it already past the bar's reach)
        self.crossed_whole: dict[int, bool] = {}
        self._next_tick: int | None = None
        self._ticks: list[int] = []
        self._rows: list[np.ndarray] = []
        self._stuck = (
            None if bar.stuck_x_mm is None else self._em_of_stuck(np.random.default_rng([seed, 18]))
        )

    def _em_of_stuck(self, rng: np.random.Generator) -> FragmentEM:
        return material_em(self.bar, "steel", "plate", 8.0, 8.0, rng)

    def em_of(
        self, fragment_id: int, class_name: str, kind: str, length: float, width: float
    ) -> FragmentEM:
        """The fragment's ``FragmentEM``, drawn once from (seed, id)."""
        em = self._em.get(fragment_id)
        if em is None:
            rng = np.random.default_rng([self.seed, 19, fragment_id])
            em = material_em(self.bar, class_name, kind, length, width, rng)
            self._em[fragment_id] = em
        return em

    # ---- sampling ------------------------------------------------------------------------
    def after_move(self, plant: PlantView) -> None:
        """Sample every row whose encoder count the belt passed since the last call."""
        k = self.bar.every_ticks
        now = plant.tick_unwrapped
        if self._next_tick is None:
            self._next_tick = (now // k + 1) * k
        while self._next_tick <= now:
            tick = self._next_tick
            travel_t = (tick - self.encoder_start) * self.mm_per_tick
            self._ticks.append(tick)
            self._rows.append(self._row(plant, plant.travel_mm - travel_t, travel_t, plant.now_s))
            self._next_tick += k
        self._forget(plant)

    def _row(self, plant: PlantView, back_mm: float, travel_mm: float, t_s: float) -> np.ndarray:
        """(2, F x C) in-phase and quadrature of one row (frequency-major)."""
        bar = self.bar
        reach = _NEAR_SIGMAS * bar.coil_radius_mm
        z = np.zeros((len(bar.frequencies_hz), bar.channels), np.complex128)
        lo, hi = bar.y_bar_mm - reach + back_mm, bar.y_bar_mm + reach + back_mm
        for fid, name, kind, length, width, x, y, fx, fy, ang in plant.footprints_near(lo, hi):
            em = self.em_of(fid, name, kind, length, width)
            if fid not in self.crossed_whole:
                self.crossed_whole[fid] = y - back_mm + float(fy.max()) <= lo - back_mm + 10.0
            if em.silent:
                continue
            area = self.foot_area_mm2 * _patch(em, fx, fy, ang)
            w = channel_weights(bar, x + fx, y - back_mm + fy, area)
            z += np.asarray(em.responses)[:, None] * (em.coupling * w)[None, :]
        if self._stuck is not None and bar.stuck_x_mm is not None:
            rel = (bar.stuck_u_mm + travel_mm - bar.y_bar_mm) % bar.belt_loop_mm
            rel = rel - bar.belt_loop_mm if rel > bar.belt_loop_mm / 2 else rel
            if abs(rel) < reach:
                w = channel_weights(
                    bar,
                    np.array([bar.stuck_x_mm]),
                    np.array([bar.y_bar_mm + rel]),
                    np.array([50.0]),
                )
                z += np.asarray(self._stuck.responses)[:, None] * w[None, :]
        z_x = z.copy()
        z_x[:, :-1] += bar.crosstalk * z[:, 1:]
        z_x[:, 1:] += bar.crosstalk * z[:, :-1]
        out = np.empty((2, bar.values_per_row))
        out[0] = bar.gain * z_x.real.ravel()
        out[1] = -bar.gain * z_x.imag.ravel()
        out += self._baseline(t_s)
        if bar.noise > 0:
            c = bar.channels
            for f, rng in enumerate(self._rngs):
                out[:, f * c : (f + 1) * c] += rng.normal(0.0, bar.noise, (2, c))
        return out

    def _baseline(self, t_s: float) -> np.ndarray:
        bar = self.bar
        dt = 0.0 if self._last_s is None else max(t_s - self._last_s, 0.0)
        self._last_s = t_s
        if dt > 0 and bar.drift_walk > 0:
            c = bar.channels
            for f, rng in enumerate(self._rngs):
                step = rng.normal(0.0, bar.drift_walk * math.sqrt(dt), (2, c))
                self._walk[:, f * c : (f + 1) * c] += step
        swing = bar.drift_amp * np.sin(2 * math.pi * t_s / bar.drift_period_s + self._phase)
        return self._offset + swing + self._walk

    def _forget(self, plant: PlantView) -> None:
        """Drop the drawn make-up of fragments long gone (memory stays bounded)."""
        if len(self._em) > 4096:
            keep = {f[0] for f in plant.footprints_near(-1e9, 1e9)}
            self._em = {k: v for k, v in self._em.items() if k in keep}
            self.crossed_whole = {k: v for k, v in self.crossed_whole.items() if k in keep}

    def drain(self) -> SensorRows:
        """The rows sampled since the last call (oldest first), (N, F x C) per component."""
        c = self.bar.values_per_row
        if not self._rows:
            return SensorRows.empty(in_phase_width=c, quadrature_width=c)
        rows = np.stack(self._rows)
        ticks = np.asarray(self._ticks, np.int64)
        self._rows, self._ticks = [], []
        return SensorRows(ticks, rows[:, 0].astype(np.float32), rows[:, 1].astype(np.float32))
