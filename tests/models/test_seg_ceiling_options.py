"""The instance cue's ceiling-study options (``SegTrainConfig.dilations``, ``stride``;
session 15): the defaults build seg-v1/v2's net unchanged, and a finer-stride or
deeper net keeps the line's input and output contract (``vision.learned`` loads
and runs it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from models.seg_models import resolve_seg_model
from tests.vision.test_learned import BELT, two_piece_set
from vision.learned import InstanceCue

torch = pytest.importorskip("torch")

from models.seg_train import SegTrainConfig, export_seg_onnx, make_net, train_seg  # noqa: E402


@pytest.mark.parametrize("model", ["seg-v1", "seg-v2"])
def test_default_options_build_the_shipped_nets(model: str) -> None:
    """Every tensor of the shipped file has a twin of the same name and shape in the
    default net, and no other tensor is left (the options change nothing by default)."""
    n_classes = 0 if model == "seg-v1" else 10
    net = make_net(12, n_classes, 8)
    state = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    inits = onnx.load(str(resolve_seg_model("builtin:" + model))).graph.initializer
    shipped = {i.name: tuple(i.dims) for i in inits if i.name in state}
    assert shipped == state


def test_stride_one_output_at_the_input_resolution() -> None:
    net = make_net(8, 10, 4, dilations=(1, 2), stride=1)
    y, mat = net(torch.zeros(1, 4, 40, 64))
    assert tuple(y.shape) == (1, 2, 40, 64)
    assert tuple(mat.shape) == (1, 10, 20, 32)  # the material head stays at h/2
    assert isinstance(net.down, torch.nn.Conv2d) and net.down.stride == (1, 1)
    assert len(net.body) == 2 and net.body[1].dilation == (2, 2)


@pytest.mark.parametrize(("stride", "dilations"), [(3, (1,)), (0, (1,)), (2, ()), (2, (1, 0))])
def test_bad_options_refused(stride: int, dilations: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="SegNet"):
        make_net(8, 0, 0, dilations=dilations, stride=stride)


@pytest.mark.parametrize(("stride", "dilations"), [(1, (1, 2, 4)), (2, (1, 2, 4, 8, 16, 1))])
def test_finer_or_deeper_cue_trains_exports_and_runs_on_the_line(
    tmp_path: Path, stride: int, dilations: tuple[int, ...]
) -> None:
    small, data = two_piece_set(128, (40, 80), (30, 64, 98))
    cfg = SegTrainConfig(steps=3, batch=2, n_classes=0, width=6, stride=stride,
                         dilations=dilations)  # fmt: skip
    net, summary = train_seg(data, data, cfg)
    assert len(summary["history"]) == 3
    path = tmp_path / "cue.onnx"
    assert export_seg_onnx(net, path, {"sortline.kind": "instance-cue"}, data) < 1e-4
    core, contact = InstanceCue.load(path).predict(small, np.full_like(small, BELT), data.fg[0])
    assert core.shape == contact.shape == (128, 128)


def test_oracle_block2_keeps_flat_cores_and_blurs_a_one_px_seam() -> None:
    """``bench.seg_ceiling_oracle._block2`` (the finest core a stride-2 net draws): a
    flat map stays flat, odd sizes keep their shape, a one-px gap is filled in."""
    from bench.seg_ceiling_oracle import _block2

    flat = np.full((9, 13), 0.6, np.float32)
    assert _block2(flat).shape == (9, 13)
    assert np.allclose(_block2(flat), 0.6)
    seam = np.ones((8, 12), np.float32)
    seam[:, 5] = 0.0  # two cores one px apart
    assert seam[:, 5].max() == 0.0 and _block2(seam)[:, 5].min() > 0.45


def test_wall_budget_stops_after_a_validation() -> None:
    _, data = two_piece_set(128, (40, 80), (30, 64, 98))
    cfg = SegTrainConfig(steps=50, batch=2, n_classes=0, width=4, max_wall_s=1e-9)
    _, summary = train_seg(data, data, cfg)
    assert summary["stopped_at_step"] == 1
    assert [h["step"] for h in summary["history"]] == [1]
    _, full = train_seg(data, data, SegTrainConfig(steps=3, batch=2, n_classes=0, width=4))
    assert full["stopped_at_step"] is None and len(full["history"]) == 3
