"""``sortline replay VIDEO``: vision and tracking on a recorded video, no PLC.

Frames are read in order, every frame, as fast as vision takes them (the
camera is opened ``stepped``: a video is not paced on the clock). With no PLC,
each frame's tick is estimated from the belt speed and the frame's time,
counter / fps (``tick_estimated``). Detections go through the same controller as on
the line (tracking, class evidence over views); its pulses are counted, not
sent. Prints a JSON summary: frames, ``objects`` (distinct confirmed tracks),
per-class counts, throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="vision + tracking on a recorded video (no PLC)")
    p.add_argument("video", help="video file (or a camera source: v4l2:N, rtsp://..., genicam:...)")
    p.add_argument("--fps", type=float, help="frame rate (default: the file's, else the config's)")
    p.add_argument("--speed", type=float, metavar="M_S", help="belt speed (default: the config's)")
    p.add_argument("--calibration", type=Path, help="calibration JSON (camera model, geometry)")
    p.add_argument("--config", type=Path, help="line config TOML (default: the embedded one)")
    p.add_argument("--model", help="model file or builtin:NAME (default: the config's)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0 = all)")
    p.add_argument("--json", type=Path, help="also write the summary here")
    p.set_defaults(func=_replay)


def _setup(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """(config, geometry, camera model or None, classifier) from the arguments."""
    from models.registry import resolve_model
    from sortline.config import load_config
    from vision.classifier import OnnxClassifier

    config = load_config(args.config)
    geometry = config.geometry
    camera_model = None
    if args.calibration is not None:
        from calibration.record import parse_calibration
        from core.errors import InputFileError

        try:
            text = args.calibration.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputFileError(args.calibration, f"cannot read: {exc.strerror or exc}") from None
        cal = parse_calibration(text, args.calibration)
        try:
            geometry = cal.apply(geometry)
        except ValueError as exc:
            raise InputFileError(args.calibration, str(exc)) from None
        camera_model = cal.camera_model(geometry.camera)
    model = args.model or config.resolve_path(config.vision.model)
    clf = OnnxClassifier.load(
        resolve_model(model),
        expected_classes=config.line.classes,
        intra_op_threads=config.vision.intra_op_threads,
    )
    return config, geometry, camera_model, clf


def _replay(args: argparse.Namespace) -> int:
    from control.controller import Controller
    from control.recipe import load_recipe
    from core.frame import Frame, FrameError
    from vision.pipeline import VisionPipeline
    from vision.sources import SourceError, VideoCamera, VideoEndedError, open_camera

    config, geometry, camera_model, clf = _setup(args)
    speed_mm_s = args.speed * 1000.0 if args.speed else geometry.belt.speed_mm_s
    cam = geometry.camera
    camera = open_camera(
        args.video,
        size=(cam.width_px, cam.height_px),
        fps=args.fps or cam.fps,
        latency_s=config.camera.latency_ms / 1000.0,
        genicam=config.camera.genicam,
        stepped=True,
    )
    camera.open()  # SourceOpenError: one line, exit 2
    fps = args.fps or (camera.fps if isinstance(camera, VideoCamera) else cam.fps)
    ticks_per_frame = speed_mm_s / geometry.belt.mm_per_tick / fps
    recipe = load_recipe(config.resolve_path(config.control.recipe), clf.class_names)
    ctl = Controller(
        geometry, recipe, clf.class_names, config.control.deadline_margin_ms,
        config.control.control_params(),
    )  # fmt: skip
    ctl.set_belt_speed(speed_mm_s)
    pipe = VisionPipeline(
        geometry, clf, camera_model=camera_model, crop_policy=config.vision.crop_policy(),
        merge_params=config.vision.merge_params(),
        segment_params=config.vision.segment_params(config.resolve_path),
    )  # fmt: skip
    counter = TrackCounter()
    error: str | None = None
    first: int | None = None
    t0 = time.perf_counter()
    try:
        while not (args.max_frames and pipe.times.frames >= args.max_frames):
            raw = camera.read(config.camera.stall_ms / 1000.0)
            first = raw.counter if first is None else first
            tick = round((raw.counter - first) * ticks_per_frame) % (1 << 32)
            frame = Frame(raw.image, raw.counter, tick, raw.t_s, tick_estimated=True)
            dets = pipe.process(frame)
            tracks, pulses = ctl.update(dets, frame.tick)
            counter.update(tracks, len(pulses))
    except VideoEndedError:
        pass
    except (SourceError, FrameError) as exc:
        error = str(exc)
    finally:
        camera.close()
    wall_s = time.perf_counter() - t0
    summary = counter.summary(clf.class_names)
    times = pipe.times
    out = {
        "video": str(args.video),
        "frames": times.frames,
        "fps_video": fps,
        "speed_mm_s": speed_mm_s,
        "tick_estimated": True,
        **summary,
        "detections": times.fragments,
        "rejected_not_fragments": times.rejected,
        "throughput_fps": times.frames / wall_s if wall_s > 0 else None,
        "vision_ms_per_frame": 1000.0 * times.total_s / max(times.frames, 1),
        "wall_s": wall_s,
        "error": error,
        "command": "sortline " + " ".join(sys.argv[1:]),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    if error is not None:
        print(f"sortline replay: error: {error}", file=sys.stderr)
        return 1
    return 0


class TrackCounter:
    """Distinct fragments = tracks confirmed at least once; class = their last
    combined class (evidence over all their views)."""

    def __init__(self, min_views: int = 2) -> None:
        self.min_views = min_views
        self.class_of: dict[int, int] = {}
        self.pulses = 0

    def update(self, tracks: Any, n_pulses: int) -> None:
        from core.types import TrackState

        self.pulses += n_pulses
        ok = (tracks.state != TrackState.TENTATIVE) & (tracks.n_views >= self.min_views)
        for tid, cid in zip(tracks.track_id[ok], tracks.class_id[ok], strict=True):
            self.class_of[int(tid)] = int(cid)

    def summary(self, class_names: tuple[str, ...]) -> dict[str, Any]:
        counts = dict.fromkeys(class_names, 0)
        unknown = 0
        for cid in self.class_of.values():
            if 0 <= cid < len(class_names):
                counts[class_names[cid]] += 1
            else:
                unknown += 1
        return {
            "objects": len(self.class_of),
            "per_class": counts,
            "unclassified": unknown,
            "pulses_scheduled": self.pulses,
        }
