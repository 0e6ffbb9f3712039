"""The virtual bench rig: a short belt with camera, encoder and valve bar.

Its true parameters (``RigTruth``: lens, tilt, mm per tick, valve line distance,
per-valve opening and closing delays, a dead valve) are known to tests and to
the bench report, never to the calibration procedures, which see only what a
real rig gives them: camera frames with encoder counts, the drive's reported
speed, and which valve commands ejected a test fragment.

The operator's actions are methods: hold the ChArUco board in front of the
camera (``capture_board_pose``), lay it on the belt (``place_board``), step
or run the belt, feed rows of test fragments and command valves (``fire``).
Valves follow the rule that defines their delays: a fragment is ejected when
its centre crosses the valve line while that valve's air is on, i.e. between
``on + open_delay`` and ``off + close_delay`` (each with timing jitter).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from calibration.charuco import BoardSpec
from calibration.geometry import LineGeometry
from core.frame import Frame
from core.ticks import TICK_MODULUS, tick_diff
from sim.benchrig.camera import TrueCamera, rotation_xyz_deg

__all__ = ["BenchRig", "RigTruth"]

_TEX_PX_PER_MM = 3.0
_TEX_MARGIN_MM = 12.0
_BOARD_DARK, _BOARD_LIGHT, _BACKGROUND = 30.0, 225.0, 95.0
_BELT, _FRAGMENT = 45.0, 205.0


@dataclasses.dataclass(frozen=True, eq=False)
class RigTruth:
    """Hidden truth of one rig. Delays in ms, lengths in mm.

    open_delay_ms, close_delay_ms: (n_valves,) float64.
    """

    camera: TrueCamera
    mm_per_tick: float
    y_valve_mm: float
    n_valves: int
    pitch_mm: float
    x_first_mm: float
    blast_width_mm: float
    open_delay_ms: np.ndarray
    close_delay_ms: np.ndarray
    dead_valves: tuple[int, ...]
    board_angle_deg: float  # how crooked the operator lays the board on the belt
    board_x_error_mm: float  # where it really lies vs where the fence says
    speed_report_gain: float  # drive-reported speed / true speed
    timing_jitter_ms: float = 0.08
    roll_jitter_mm: float = 0.1
    placement_jitter_mm: float = 1.0
    fragment_radius_mm: float = 4.0

    @classmethod
    def make(cls, nominal: LineGeometry, seed: int = 0) -> RigTruth:
        """Truth near the nominal line: every number off by a realistic amount."""
        rng = np.random.default_rng(seed)
        cam = nominal.camera
        # the rig's camera sees a little more than the nominal view, so every lane is in it
        mm_per_px = cam.view_width_mm / cam.width_px * 1.04
        x_centre = cam.x_offset_mm + cam.view_width_mm / 2 + rng.uniform(-3, 3)
        camera = TrueCamera.make(cam.width_px, cam.height_px, mm_per_px, x_centre, rng)
        n = nominal.valves.n_valves
        return cls(
            camera=camera,
            mm_per_tick=nominal.belt.mm_per_tick * (1 + rng.uniform(-0.03, 0.03)),
            y_valve_mm=nominal.valves.y_valve_mm + rng.uniform(-8, 8),
            n_valves=n,
            pitch_mm=nominal.valves.pitch_mm,
            blast_width_mm=nominal.valves.blast_width_mm,
            open_delay_ms=rng.uniform(2.0, 4.5, n),
            close_delay_ms=rng.uniform(1.2, 2.8, n),
            dead_valves=(int(rng.integers(1, max(n - 1, 2))),),
            board_angle_deg=rng.uniform(-0.4, 0.4),
            board_x_error_mm=rng.uniform(-0.2, 0.2),
            speed_report_gain=1.0 + rng.uniform(-0.003, 0.003),
            x_first_mm=nominal.valves.x_first_mm + rng.uniform(-3.0, 3.0),
        )

    def valve_centre_mm(self, valve: np.ndarray) -> np.ndarray:
        return self.x_first_mm + (valve + 0.5) * self.pitch_mm


@dataclasses.dataclass
class _BoardOnBelt:
    x_mm: float  # belt x of the board's origin corner
    y_mm: float  # belt y of the origin corner at ``travel_mm``
    travel_mm: float


class BenchRig:
    """A simulated rig; every call advances its belt, clock and encoder as a real one."""

    def __init__(self, truth: RigTruth, board: BoardSpec, seed: int = 0) -> None:
        self.truth = truth
        self.board = board
        self._rng = np.random.default_rng(seed + 1_000_003)
        self._travel_mm = 0.0
        self._t_s = 0.0
        self._tick0 = TICK_MODULUS - 20_000  # the count wraps during a session
        self._frame_id = 0
        self._on_belt: _BoardOnBelt | None = None
        self._fragments = np.zeros((0, 2))
        self._frag_travel_mm = 0.0
        self._speed_mm_s = 0.0
        self._texture = self._board_texture()

    # ------------------------------------------------------------ encoder
    @property
    def tick(self) -> int:
        """The encoder count now (uint32)."""
        return (
            self._tick0 + int(np.floor(self._travel_mm / self.truth.mm_per_tick))
        ) % TICK_MODULUS

    def _travel_at_tick(self, tick_u32: int) -> float:
        """Belt travel (mm) at which the encoder reaches ``tick_u32`` (nearest to now)."""
        ahead = tick_diff(tick_u32, self.tick)
        return (
            int(np.floor(self._travel_mm / self.truth.mm_per_tick)) + ahead
        ) * self.truth.mm_per_tick

    def step_belt_ticks(self, ticks: int) -> None:
        """Jog the belt until the encoder has counted ``ticks`` more (it stops on the count)."""
        if ticks < 0:
            raise ValueError("the rig's belt runs forward only")
        whole = int(np.floor(self._travel_mm / self.truth.mm_per_tick)) + ticks
        new_travel = (whole + 0.5) * self.truth.mm_per_tick
        self._t_s += (new_travel - self._travel_mm) / 200.0 + 1.0
        self._travel_mm = new_travel

    def reported_speed_mm_s(self) -> float:
        """The belt speed the drive reports (its own estimate, slightly off)."""
        return self._speed_mm_s * self.truth.speed_report_gain

    # ------------------------------------------------------------- board
    def _board_texture(self) -> np.ndarray:
        printed = self.board.render(_TEX_PX_PER_MM, _TEX_MARGIN_MM).astype(np.float32) / 255.0
        tex = np.asarray(cv2.GaussianBlur(printed, (0, 0), 0.9), dtype=np.float32)
        return _BOARD_DARK + (_BOARD_LIGHT - _BOARD_DARK) * tex

    def _render_board(self, rot: np.ndarray, t: np.ndarray, background: float) -> np.ndarray:
        bx, by = self.truth.camera.plane_maps(rot, t)
        mx = ((bx + _TEX_MARGIN_MM) * _TEX_PX_PER_MM - 0.5).astype(np.float32)
        my = ((by + _TEX_MARGIN_MM) * _TEX_PX_PER_MM - 0.5).astype(np.float32)
        mx[~np.isfinite(mx)] = -1e4
        my[~np.isfinite(my)] = -1e4
        return cv2.remap(
            self._texture,
            mx,
            my,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=background,
        )

    def _finish(self, image: np.ndarray, shear_px: float = 0.0) -> Frame:
        if shear_px:
            h, w = image.shape
            cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            cols += shear_px * np.sin(rows / h * 2 * np.pi).astype(np.float32)
            image = cv2.remap(image, cols, rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        image = cv2.GaussianBlur(image, (0, 0), 0.5)
        image = image + 2.0 * self._rng.standard_normal(image.shape, dtype=np.float32)
        out = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        self._frame_id += 1
        return Frame(out, self._frame_id, self.tick, self._t_s)

    def capture_board_pose(
        self,
        rotation_deg: tuple[float, float, float],
        centre_mm: tuple[float, float, float],
        shear_px: float = 0.0,
    ) -> Frame:
        """The board held in front of the camera: rotated by ``rotation_deg`` (x, y, z)
        with its centre at ``centre_mm`` in the camera frame. ``shear_px`` > 0 makes a
        bad view (a flexed board / rolling-shutter shear of that amplitude)."""
        rot = rotation_xyz_deg(*rotation_deg)
        w, h = self.board.size_mm
        t = np.asarray(centre_mm, dtype=np.float64) - rot @ np.array([w / 2, h / 2, 0.0])
        self._t_s += 2.0
        return self._finish(self._render_board(rot, t, _BACKGROUND), shear_px)

    def place_board(self, x_mm: float, y_mm: float) -> None:
        """Lay the board flat on the belt, its origin corner against the fence at belt
        ``x_mm`` and about ``y_mm`` downstream; the operator lays it slightly crooked."""
        self._on_belt = _BoardOnBelt(x_mm + self.truth.board_x_error_mm, y_mm, self._travel_mm)

    def remove_board(self) -> None:
        self._on_belt = None

    def capture(self) -> Frame:
        """One frame of the belt as it is now (with the board if it lies there)."""
        cam = self.truth.camera
        b = self._on_belt
        if b is None:
            return self._finish(np.full((cam.height_px, cam.width_px), _BELT, np.float32))
        rot_belt = rotation_xyz_deg(0.0, 0.0, self.truth.board_angle_deg)
        origin = np.array([b.x_mm, b.y_mm + self._travel_mm - b.travel_mm, 0.0])
        rot = cam.rotation @ rot_belt
        t = cam.rotation @ (origin - cam.centre_mm)
        return self._finish(self._render_board(rot, t, _BELT))

    def capture_running(self, speed_mm_s: float, n_frames: int, period_s: float) -> list[Frame]:
        """Frames every ``period_s`` while the belt runs at ``speed_mm_s``."""
        self._speed_mm_s = speed_mm_s
        frames = []
        for _ in range(n_frames):
            frames.append(self.capture())
            self._travel_mm += speed_mm_s * period_s
            self._t_s += period_s
        return frames

    # ------------------------------------------------------- test fragments
    def feed_test_fragments(self, x_mm: np.ndarray, y_mm: np.ndarray, speed_mm_s: float) -> Frame:
        """Fragments dropped near belt ``(x_mm, y_mm)`` at exposure, belt at ``speed_mm_s``;
        returns the frame that sees them. ``fire`` then acts on these fragments."""
        n = len(x_mm)
        jitter = self._rng.normal(0.0, self.truth.placement_jitter_mm, (n, 2))
        self._fragments = np.stack([x_mm, y_mm], axis=1) + jitter
        self._speed_mm_s = speed_mm_s
        self._travel_mm += 500.0
        self._t_s += 500.0 / speed_mm_s
        self._frag_travel_mm = self._travel_mm
        self.remove_board()
        return self._finish(self._render_fragments())

    def _render_fragments(self) -> np.ndarray:
        cam = self.truth.camera
        img = np.full((cam.height_px, cam.width_px), _BELT, np.float32)
        bx, by = cam.belt_map
        r = self.truth.fragment_radius_mm
        if not len(self._fragments):
            return img
        centres = np.column_stack([self._fragments, np.zeros(len(self._fragments))])
        px = cam.project_belt(centres)
        half = int(np.ceil(r / 0.6)) + 3
        for (c, rw), (x, y) in zip(px, self._fragments, strict=True):
            c0, c1 = max(int(c) - half, 0), min(int(c) + half + 1, cam.width_px)
            r0, r1 = max(int(rw) - half, 0), min(int(rw) + half + 1, cam.height_px)
            if c0 >= c1 or r0 >= r1:
                continue
            dist = np.hypot(bx[r0:r1, c0:c1] - x, by[r0:r1, c0:c1] - y)
            cover = np.clip(0.5 + (r - dist) / 0.8, 0.0, 1.0)
            img[r0:r1, c0:c1] += (_FRAGMENT - _BELT) * cover.astype(np.float32)
        return img

    def fire(self, valve: np.ndarray, on_tick: np.ndarray, off_tick: np.ndarray) -> np.ndarray:
        """Execute valve commands on the fed fragments; (N,) bool: did command i eject
        a fragment (the lane's ejection sensor saw one)? Clears the fragments."""
        tr = self.truth
        v = self._speed_mm_s / 1000.0  # mm per ms
        valve = np.asarray(valve, dtype=np.int64)
        if np.any((valve < 0) | (valve >= tr.n_valves)):
            raise ValueError("valve index outside the bar")
        on = np.array([self._travel_at_tick(int(t)) for t in on_tick])
        off = np.array([self._travel_at_tick(int(t)) for t in off_tick])
        if np.any(on < self._frag_travel_mm):
            raise ValueError("a valve command was due before the frame that saw the fragments")
        jit = self._rng.normal(0.0, tr.timing_jitter_ms, (2, len(valve)))
        air_from = on + (tr.open_delay_ms[valve] + jit[0]) * v
        air_to = off + (tr.close_delay_ms[valve] + jit[1]) * v
        frag = self._fragments
        roll = self._rng.normal(0.0, tr.roll_jitter_mm, len(frag))
        crossing = self._frag_travel_mm + tr.y_valve_mm - frag[:, 1] + roll  # travel, mm
        lane = np.abs(frag[None, :, 0] - tr.valve_centre_mm(valve)[:, None]) <= (
            tr.blast_width_mm / 2
        )
        timed = (crossing[None, :] >= air_from[:, None]) & (crossing[None, :] <= air_to[:, None])
        alive = ~np.isin(valve, tr.dead_valves)
        hits = np.any(lane & timed, axis=1) & alive
        self._fragments = np.zeros((0, 2))
        return hits
