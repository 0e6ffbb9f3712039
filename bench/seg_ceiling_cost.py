"""ONNX Runtime cost of instance-cue nets by shape (issue 15, session 15's ceiling
study): the cost of a net does not depend on its weights, so untrained nets of
each width, depth and stride are exported and timed on one whole validation
frame at the segmentation's resolution (640x256 for the default camera), one
thread, thread CPU time; the shipped seg-v1/seg-v2 and any trained files given
are timed beside them. The line reads only the boxes of large components (0.15-0.20
of the frame's pixels on ``crowded`` and shred 500/s, ``vision/learned.py``), so
a line frame costs about that share of the whole-frame figure.

    python -m bench.seg_ceiling_cost --cache DATA.npz --json OUT.json [FILE.onnx ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.seg_ceiling import _load_or_render
from models.seg_models import resolve_seg_model
from models.seg_train import export_seg_onnx, make_net
from vision.learned import net_input

SHAPES = (  # (width, dilations, stride)
    (12, (1, 2, 4, 8, 1), 2),
    (24, (1, 2, 4, 8, 1), 2),
    (32, (1, 2, 4, 8, 1), 2),
    (32, (1, 2, 4, 8, 16, 1, 2, 4, 1), 2),
    (12, (1, 2, 4, 8, 1), 1),
    (16, (1, 2, 4, 8, 1), 1),
    (24, (1, 2, 4, 8, 1), 1),
    (32, (1, 2, 4, 8, 1), 1),
)


def _time(path: Path, x: np.ndarray, reps: int) -> dict[str, float]:
    import onnxruntime as ort

    opt = ort.SessionOptions()
    opt.intra_op_num_threads = 1
    opt.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opt, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})
    ms = []
    for _ in range(reps):
        t0 = time.thread_time()
        sess.run(None, {name: x})
        ms.append(1e3 * (time.thread_time() - t0))
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.median(a)), 2), "min_ms": round(float(a.min()), 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.seg_ceiling_cost", description=__doc__)
    ap.add_argument("files", nargs="*", help="trained cue files to time too")
    ap.add_argument("--cache", type=Path, required=True, help="bench.seg_ceiling's frames")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    _, val = _load_or_render(a.cache, 20, print)
    x = net_input(val.small[0], val.belt[0], val.fg[0])[None]
    rows = []
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for width, dil, stride in SHAPES:
            net = make_net(width, 0, 0, dil, stride)
            weights = sum(p.numel() for p in net.parameters())
            path = Path(tmp) / f"w{width}_d{len(dil)}_s{stride}.onnx"
            export_seg_onnx(net.eval(), path, {"sortline.kind": "instance-cue"}, val)
            r = {"net": f"width {width}, {len(dil)} residual convs, stride {stride}",
                 "weights": weights, **_time(path, x, a.reps)}  # fmt: skip
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
        for f in ["builtin:seg-v1", "builtin:seg-v2", *a.files]:
            r = {"net": f, **_time(resolve_seg_model(f), x, a.reps)}
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    out = {
        "command": "python -m bench.seg_ceiling_cost " + " ".join(argv or sys.argv[1:]),
        "frame_px": list(x.shape[-2:]),
        "note": "ONNX Runtime, 1 thread, thread CPU ms per whole frame at the "
        "segmentation's resolution; the line reads ~0.15-0.20 of it",
        "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "rows": rows,
    }
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
