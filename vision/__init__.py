"""Vision: frames in, ``core.types.Detections`` in belt millimetres out.

- ``vision.pipeline.VisionPipeline(geometry, classifier, camera_model=None)``:
  ``process(frame) -> Detections`` (segmentation against an adaptive belt
  model, touching and overlapping fragments split (``vision.split``), pixels
  -> belt mm, crops classified in batches; segments the model calls "not a
  fragment" dropped); or its two stages ``prepare(frame, buffer)`` and
  ``finish(prepared)``. Only the views worth a crop are classified
  (``vision.track_crops.CropPolicy``: new, uncertain and fully visible
  fragments; ``mode="every"`` for all), the others carry no class evidence;
  probable merges are flagged in ``Detections.merged`` (``vision.merge``).
  Hot loops are Numba kernels (``vision.kernels``, ``vision.kernels_split``)
  with OpenCV/NumPy twins in ``tests/vision/naive.py``.
- ``vision.pipelined.PipelinedVision(pipeline)``: ``push(frame) -> Detections | None``
  (the previous frame's), ``flush()``: segmentation of frame n+1 beside
  classification of frame n on a worker thread (two cores, one frame of latency).
- ``vision.classifier.OnnxClassifier.load(path, expected_classes, intra_op_threads)``:
  a self-describing ONNX model (metadata validated; ``ModelFileError``).
- ``vision.camera``: the frame loop's camera contract (``Camera``, ``RawFrame``,
  ``SourceError`` and subclasses, ``check_image``).
- ``vision.sources.open_camera(source, size=, fps=, latency_s=, genicam=, stepped=)``:
  the camera ``[camera] source`` names, unopened: ``VideoCamera`` (a video
  played at its recorded rate), ``OpenCvCamera`` (``v4l2:N``, ``rtsp://``),
  ``vision.sources_genicam.GenICamCamera`` (harvesters, extra ``genicam``),
  ``vision.sources_shm.ShmRingCamera`` (``shm:NAME``).
- ``vision.labelling.UncertainFolder``: capped folder of uncertain fragments.

Imports only ``core`` and ``calibration`` (DESIGN.md).
"""

from pathlib import Path

from core.numba_cache import purge_stale_kernel_caches

# kernels call kernels of sibling files: drop caches an edit may have made stale
purge_stale_kernel_caches(Path(__file__).parent)
