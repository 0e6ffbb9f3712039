"""``VisionPipeline``: one camera frame in, ``Detections`` in belt millimetres out.

Steps: check the frame; segment against the adaptive belt model (splitting
touching fragments); map pixels to belt mm (nominal scale, or a calibrated
``CameraModel`` with undistortion and homography); flag probable merges
(``vision.merge``); choose the views worth a crop (``vision.track_crops``:
new, uncertain and fully visible fragments, a per-frame budget; or every
view), cut them and classify them in one batch; optionally hand uncertain
fragments to a labelling folder. Views not chosen carry no class evidence.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

import numpy as np

from calibration.geometry import LineGeometry
from core.frame import Frame, FrameError
from core.types import Detections
from vision.classifier import Classifier
from vision.crops import CropParams, crop_fill, extract_crops
from vision.merge import MergeFlagger, MergeParams
from vision.segment import Segmenter, SegmentParams, Segments, segment_axes_mm
from vision.track_crops import CropPlanner, CropPolicy

__all__ = ["PixelToBelt", "Prepared", "StageTimes", "VisionPipeline"]

DEFAULT_MERGE = MergeParams()  # the merge cues the line runs with


class PixelToBelt(Protocol):
    """A camera model: pixel centres (column, row) -> belt (x, y) mm, vectorised."""

    def px_to_mm(self, col_px: np.ndarray, row_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class UncertainSink(Protocol):
    """Receives fragments the classifier was unsure of (see ``vision.labelling``)."""

    def offer(
        self, frame: Frame, dets: Detections, crops: np.ndarray, class_names: tuple[str, ...]
    ) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Prepared:
    """A frame between the two stages of ``VisionPipeline`` (see ``prepare``).

    fill_bgr: (N, 3) uint8 belt colour of each crop's background, None without
              classifier (taken here: the belt model moves on with the next frame).
    buffer:   the crop buffer the crops are cut into.
    crops:    (N, S, S, 3) uint8 view into that buffer when ``prepare`` cut them
              (``VisionPipeline.crops_in_prepare``), else None (``finish`` cuts them).
    t0_s, t1_s, t2_s: perf_counter at start, after segmentation, at the end.
    """

    frame: Frame
    segments: Segments
    centroid_mm: np.ndarray
    extent_mm: np.ndarray
    area_mm2: np.ndarray
    fill_bgr: np.ndarray | None
    merged: np.ndarray
    buffer: int
    crops: np.ndarray | None
    t0_s: float
    t1_s: float
    t2_s: float
    cpu_s: float = 0.0  # thread CPU time of ``prepare``
    crop_cpu_s: float = 0.0  # ... of which cutting crops


@dataclasses.dataclass(slots=True)
class StageTimes:
    """Cumulative seconds per stage and counts, for status and benchmarks."""

    frames: int = 0
    fragments: int = 0
    segment_s: float = 0.0
    crop_s: float = 0.0  # measure_mm and crops
    classify_s: float = 0.0  # classifier, reject, Detections
    total_s: float = 0.0  # sum of the stages (CPU-ish time, not latency when pipelined)
    rejected: int = 0  # segments the classifier called "not a fragment"
    crops: int = 0  # views classified (``fragments`` - crops went without a crop)
    merged: int = 0  # segments flagged as probable merges
    prepare_cpu_s: float = 0.0  # thread CPU time of each stage (the calling thread's
    finish_cpu_s: float = 0.0  # only: OpenCV's or ONNX Runtime's own pools not counted)


class VisionPipeline:
    """Segments, measures and classifies fragments in frames of one camera.

    geometry:     the line (camera size and nominal scale).
    classifier:   None leaves every detection unclassified (class_id -1).
    camera_model: calibrated pixel -> belt mm map; default the nominal scale.
    uncertain:    optional sink for fragments whose confidence is below
                  ``uncertain_below``.
    crop_policy:  which views get a crop (default: new, uncertain and fully
                  visible fragments; ``CropPolicy(mode="every")``: all).
    merge_params: the probable-merge cues; None: no segment is flagged.
    """

    def __init__(
        self,
        geometry: LineGeometry,
        classifier: Classifier | None,
        camera_model: PixelToBelt | None = None,
        segment_params: SegmentParams | None = None,
        crop_params: CropParams | None = None,
        uncertain: UncertainSink | None = None,
        uncertain_below: float = 0.6,
        reject_above: float = 0.5,
        crop_policy: CropPolicy | None = None,
        merge_params: MergeParams | None = DEFAULT_MERGE,
    ) -> None:
        self.geometry = geometry
        self.classifier = classifier
        self.camera_model: PixelToBelt = camera_model or geometry.camera
        self.segmenter = Segmenter(segment_params)
        size = classifier.input_size_px if classifier is not None else 64
        self.crop_params = dataclasses.replace(crop_params or CropParams(), size_px=size)
        self.uncertain = uncertain
        self.uncertain_below = float(uncertain_below)
        self.reject_above = float(reject_above)
        self.times = StageTimes()
        self.last_segments: Segments | None = None
        # crops of the classified views (``Detections`` rows with class_id >= 0, in
        # order); a view: valid until the next frame
        self.last_crops: np.ndarray | None = None
        self._crop_bufs: dict[int, np.ndarray] = {}
        # cut crops in ``prepare`` (True) or in ``finish``; ``PipelinedVision`` moves
        # them to whichever stage is lighter. Same crops either way.
        self.crops_in_prepare = True
        self.last_split_cpu_s = (0.0, 0.0, 0.0)  # prepare, finish (both w/o crops), crops
        self.merges = MergeFlagger(merge_params) if merge_params is not None else None
        self.set_crop_policy(crop_policy or CropPolicy())

    def set_merge_params(self, params: MergeParams | None) -> None:
        """Flag probable merges with ``params`` from the next frame on (None: never)."""
        self.merges = MergeFlagger(params) if params is not None else None

    def set_crop_policy(self, policy: CropPolicy) -> None:
        """Use ``policy`` from the next frame on (forgets the followed segments)."""
        cam = self.geometry.camera
        n = len(self.class_names)
        self.planner = CropPlanner(policy, self.geometry.belt.mm_per_tick, cam.height_px, n)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classifier.class_names if self.classifier is not None else ()

    def check_frame(self, frame: Frame) -> None:
        """Raise ``FrameError`` unless ``frame`` is a ``Frame`` of this camera's size."""
        if not isinstance(frame, Frame):
            raise FrameError(f"expected a core.frame.Frame, got {type(frame).__name__}")
        cam = self.geometry.camera
        frame.check_size(cam.width_px, cam.height_px)

    def process(self, frame: Frame) -> Detections:
        """Detections of one frame: bbox px, centroid/extent in belt mm, classes."""
        return self.finish(self.prepare(frame))

    def prepare(self, frame: Frame, buffer: int = 0) -> Prepared:
        """First stage: segment and measure (and note each crop's fill colour).

        ``finish`` completes it (crops into crop buffer ``buffer``, classifier);
        the two may run on different threads, ``prepare`` of frame n+1 beside
        ``finish`` of frame n, as long as they use different buffers
        (``PipelinedVision`` alternates 0 and 1).
        """
        self.check_frame(frame)
        c0 = time.thread_time()
        t0 = time.perf_counter()
        seg = self.segmenter.segment(frame.image)
        t1 = time.perf_counter()
        centroid, extent, area = self.measure_mm(seg)
        merged = (
            self.merges.flag(seg, frame.image)
            if self.merges is not None
            else np.zeros(len(seg), bool)
        )
        fill = crops = None
        crop_cpu = 0.0
        if self.classifier is not None:
            fill = crop_fill(seg, self.segmenter.belt.mean_u8, self.crop_params)
            if self.crops_in_prepare and self.planner.policy.mode == "every":
                c1 = time.thread_time()
                crops = self._cut(frame, seg, fill, buffer)
                crop_cpu = time.thread_time() - c1
        t2 = time.perf_counter()
        cpu = time.thread_time() - c0
        return Prepared(
            frame, seg, centroid, extent, area, fill, merged, buffer, crops, t0, t1, t2, cpu,
            crop_cpu,
        )  # fmt: skip

    def _cut(
        self,
        frame: Frame,
        seg: Segments,
        fill: np.ndarray,
        buffer: int,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        n = len(seg) if rows is None else int(rows.size)
        out = self._crop_buffer(buffer, n)
        if rows is not None:
            fill = fill[rows]
        return extract_crops(
            frame.image, seg, None, self.crop_params, index=rows, out=out, fill_bgr=fill
        )

    def finish(self, prep: Prepared) -> Detections:
        """Second stage: cut and classify the crops, drop rejected segments, build
        ``Detections``."""
        frame, seg, n = prep.frame, prep.segments, len(prep.segments)
        centroid, extent, area = prep.centroid_mm, prep.extent_mm, prep.area_mm2
        merged = prep.merged
        c2 = time.thread_time()
        t2 = time.perf_counter()
        cap = self.planner.policy.frame_cap(1e3 * (prep.cpu_s + time.thread_time() - c2))
        plan = self.planner.plan(frame.tick, centroid, extent, area, seg.bbox_px, merged, cap)
        rows = plan.classify
        crops = prep.crops
        if crops is None and self.classifier is not None and prep.fill_bgr is not None:
            every = rows.size == n
            crops = self._cut(frame, seg, prep.fill_bgr, prep.buffer, None if every else rows)
        c3 = time.thread_time()
        t3 = time.perf_counter()
        if self.classifier is None or crops is None:
            prob = np.zeros((n, 0), np.float32)
            class_id = np.full(n, -1, np.int16)
            conf = np.zeros(n, np.float32)
            row_crop = np.full(n, -1, np.int64)
        else:
            k = len(self.class_names)
            if rows.size:
                got, reject = self.classifier.classify(crops)
            else:
                got, reject = np.zeros((0, k), np.float32), np.zeros(0, np.float32)
            rejected = reject > self.reject_above
            self.planner.update(plan, centroid, extent, area, got, rejected)
            prob = np.full((n, k), np.nan, np.float32)
            prob[rows] = got
            row_crop = np.full(n, -1, np.int64)
            row_crop[rows] = np.arange(rows.size)
            drop = plan.rejected.copy()
            drop[rows] |= rejected
            keep = ~drop
            self.times.crops += int(rows.size)
            if not keep.all():  # belt marks, seams, shadows: not fragments
                self.times.rejected += int(drop.sum())
                seg = _select(seg, keep)
                centroid, extent, area = centroid[keep], extent[keep], area[keep]
                merged, prob, row_crop = merged[keep], prob[keep], row_crop[keep]
                n = int(keep.sum())
            seen = row_crop >= 0
            class_id = np.full(n, -1, np.int16)
            conf = np.full(n, np.nan, np.float32)
            if seen.any():
                top = prob[seen].argmax(axis=1)
                class_id[seen] = top
                conf[seen] = prob[seen][np.arange(top.size), top]
        self.times.merged += int(np.count_nonzero(merged))
        dets = Detections(
            frame_id=frame.frame_id,
            tick=frame.tick,
            bbox_px=seg.bbox_px,
            centroid_mm=centroid,
            extent_mm=extent,
            area_mm2=area,
            class_id=class_id,
            confidence=conf,
            class_prob=prob,
            merged=merged,
            axes_mm=segment_axes_mm(seg, self.camera_model.px_to_mm),
        )
        self.last_segments, self.last_crops = seg, crops
        self._account(len(prep.segments), prep, t2, t3, time.perf_counter())
        self.times.prepare_cpu_s += prep.cpu_s
        self.times.finish_cpu_s += time.thread_time() - c2
        self.last_split_cpu_s = (
            prep.cpu_s - prep.crop_cpu_s,  # prepare without crops
            time.thread_time() - c3,  # finish without crops
            prep.crop_cpu_s + (c3 - c2),  # crops, wherever they were cut
        )
        if self.uncertain is not None and crops is not None and len(dets):
            unsure = dets.confidence < self.uncertain_below  # NaN (not classified): False
            if unsure.any():
                own = crops[row_crop[unsure]]
                self.uncertain.offer(frame, dets[unsure], own, self.class_names)
        return dets

    def _crop_buffer(self, k: int, n: int) -> np.ndarray:
        """Crop buffer ``k`` with room for ``n`` crops (grows by doubling, never shrinks)."""
        buf = self._crop_bufs.get(k)
        if buf is None or buf.shape[0] < n:
            s = self.crop_params.size_px
            rows = max(64, 1 << max(n - 1, 1).bit_length())
            buf = np.empty((rows, s, s, 3), np.uint8)
            self._crop_bufs[k] = buf
        return buf

    def measure_mm(self, seg: Segments) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Belt-mm centroid (N,2), extent (N,4) and area (N,) of segments."""
        n = len(seg)
        if n == 0:
            return np.zeros((0, 2)), np.zeros((0, 4)), np.zeros(0, np.float32)
        to_mm = self.camera_model.px_to_mm
        cx, cy = to_mm(seg.centroid_px[:, 0], seg.centroid_px[:, 1])
        b = seg.bbox_px.astype(np.float64) - 0.5  # pixel edges -> centre-index coordinates
        corners_c = np.concatenate([b[:, 0], b[:, 2], b[:, 0], b[:, 2]])
        corners_r = np.concatenate([b[:, 1], b[:, 1], b[:, 3], b[:, 3]])
        kx, ky = to_mm(corners_c, corners_r)
        kx = np.asarray(kx).reshape(4, n)
        ky = np.asarray(ky).reshape(4, n)
        extent = np.stack([kx.min(0), kx.max(0), ky.min(0), ky.max(0)], axis=1)
        # local mm^2 per px^2 from the map's Jacobian at the centroid
        c, r = seg.centroid_px[:, 0], seg.centroid_px[:, 1]
        xc, yc = to_mm(c + 1.0, r)
        xr, yr = to_mm(c, r + 1.0)
        jac = np.abs(
            (np.asarray(xc) - cx) * (np.asarray(yr) - cy)
            - (np.asarray(xr) - cx) * (np.asarray(yc) - cy)
        )
        area = (seg.area_px * jac).astype(np.float32)
        return np.column_stack([cx, cy]), extent, area

    def _account(self, n: int, prep: Prepared, t2: float, t3: float, t4: float) -> None:
        """Stage times: prepare (t0..t1 segment, t1..t2 measure) and finish (t2..t3
        crops, t3..t4 classify); a pipelined hand-over between them is not counted."""
        t = self.times
        t.frames += 1
        t.fragments += n
        t.segment_s += prep.t1_s - prep.t0_s
        t.crop_s += (prep.t2_s - prep.t1_s) + (t3 - t2)
        t.classify_s += t4 - t3
        t.total_s += (prep.t2_s - prep.t0_s) + (t4 - t2)

    def reset(self) -> None:
        """Forget the belt model (e.g. after a camera or lighting change) and the
        followed segments."""
        self.segmenter.reset()
        self.planner.reset()


def _select(seg: Segments, keep: np.ndarray) -> Segments:
    """The segments where ``keep`` is True (the label image is shared, unchanged)."""
    return dataclasses.replace(
        seg,
        label_id=seg.label_id[keep],
        bbox_px=seg.bbox_px[keep],
        centroid_px=seg.centroid_px[keep],
        area_px=seg.area_px[keep],
        moments_px=seg.moments_px[keep],
    )
