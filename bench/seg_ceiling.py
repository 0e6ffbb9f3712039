"""A ceiling study of the learned instance cue (issue 15, session 15): how far do
touching merges fall when the cue's CPU cost is no object?

Trains core-and-contact cues (``models.seg_train``, the same input and output
contract as seg-v1, so ``vision.learned`` runs them unchanged) wider, deeper or
at a finer output stride than the shipped ones, on the seg-v2 training runs
(seeds 1015-1026 with seg-v1's 1001-1014), validation seeds 3001-3004. The
rendered frames are cached (``--cache``, an .npz) so several nets share them.
Measure each model with ``sortline bench vision --study ... --seg-model FILE``
on tuning seeds (never 101/202). Not shipped: the line's models stay seg-v1/v2.

    python -m bench.seg_ceiling --out DIR/w32.onnx --width 32 --steps 2500
    python -m bench.seg_ceiling --time-only --width 24 --stride 1   # s a step
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.seg_dataset import SegRun, SegSet
from models.seg_train import TRAIN_RUNS_V2, VAL_RUNS, SegTrainConfig, train_and_export

_FIELDS = ("small", "belt", "fg", "core", "contact", "material")


def _load_or_render(cache: Path, samples: int, say: Any) -> tuple[SegSet, SegSet]:
    """The training and validation sets, rendered once and kept in ``cache``."""
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        sets = []
        for pre in ("train_", "val_"):
            arrays = {k: z[pre + k] for k in _FIELDS}
            sets.append(SegSet(**arrays, runs=tuple(str(r) for r in z[pre + "runs"])))
        return sets[0], sets[1]
    from sortline.seg_render import render_set

    train = render_set([SegRun(*r) for r in TRAIN_RUNS_V2], samples, say)
    val = render_set([SegRun(*r) for r in VAL_RUNS], max(samples // 4, 2), say)
    out: dict[str, np.ndarray] = {}
    for pre, s in (("train_", train), ("val_", val)):
        for k in _FIELDS:
            out[pre + k] = getattr(s, k)
        out[pre + "runs"] = np.asarray(s.runs)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)  # type: ignore[arg-type]
    return train, val


def _time_steps(cfg: SegTrainConfig, train: SegSet, n: int) -> float:
    """Seconds per training step (forward, backward, Adam) of ``cfg``'s net."""
    import torch

    from models.seg_train import _loss, _Sampler, make_net

    torch.set_num_threads(cfg.threads)
    net = make_net(cfg.width, cfg.n_classes, cfg.material_width, cfg.dilations, cfg.stride)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sampler = _Sampler(train, cfg, np.random.default_rng(0))
    t0 = 0.0
    for i in range(n + 1):
        if i == 1:
            t0 = time.perf_counter()
        x, y, m, c = (torch.from_numpy(a) for a in sampler.batch())
        loss = _loss(net, x, y, m, c, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.seg_ceiling", description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("seg-ceiling.onnx"))
    ap.add_argument("--cache", type=Path, default=Path("seg-ceiling-data.npz"))
    ap.add_argument("--samples", type=int, default=20, help="frames per rendered run")
    ap.add_argument("--width", type=int, default=12)
    ap.add_argument("--dilations", default="1,2,4,8,1", help="one residual conv each")
    ap.add_argument("--stride", type=int, default=2, choices=(1, 2))
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-from", default="", help="continue from this cue's weights (ONNX)")
    ap.add_argument("--max-wall-s", type=float, default=0.0, help="stop training after (0: no)")
    ap.add_argument("--version", default="ceiling-dev")
    ap.add_argument("--time-only", type=int, default=0, metavar="N",
                    help="only time N training steps (s a step) and exit")  # fmt: skip
    a = ap.parse_args(argv)

    def say(s: str) -> None:
        print(time.strftime("%H:%M:%S"), s, file=sys.stderr, flush=True)

    cfg = SegTrainConfig(
        width=a.width, batch=a.batch, steps=a.steps, lr=a.lr, seed=a.seed, n_classes=0,
        dilations=tuple(int(d) for d in a.dilations.split(",")), stride=a.stride,
        version=a.version, max_wall_s=a.max_wall_s, init_from=a.init_from,
    )  # fmt: skip
    train, val = _load_or_render(a.cache, a.samples, say)
    if a.time_only:
        s = _time_steps(cfg, train, a.time_only)
        print(json.dumps({"config": dataclasses.asdict(cfg), "s_per_step": round(s, 4)}))
        return 0

    def cached(runs: list[SegRun], samples: int, progress: Any) -> SegSet:
        return val if runs[0].seed == VAL_RUNS[0][3] else train

    summary = train_and_export(
        a.out, cfg, cached, samples=a.samples, progress=say, runs=TRAIN_RUNS_V2
    )
    say(f"wrote {a.out}: best validation loss {summary['best_val_loss']}, {summary['wall_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
