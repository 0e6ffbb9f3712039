"""Training and export on a tiny synthetic crop set: the exported ONNX model
carries valid metadata, matches torch, and learns an easy problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.dataset import CropSet, load_crop_folder, load_training_data
from models.evaluate import evaluate, markdown_tables
from vision.classifier import OnnxClassifier

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")

from models.train import TrainConfig, config_sha256, export_onnx, train  # noqa: E402

NAMES = ("red", "green", "blue", "belt")
COLOURS = {
    "red": (40, 40, 200),
    "green": (40, 180, 40),
    "blue": (200, 60, 30),
    "belt": (50, 50, 50),
}


def _crops(n_per: int, seed: int, size: int = 32) -> CropSet:
    """Discs of a class colour on a dark belt, with noise; 'belt' crops are empty."""
    import cv2

    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for k, name in enumerate(NAMES):
        for _ in range(n_per):
            img = np.full((size, size, 3), 50, np.float32) + rng.normal(0, 6, (size, size, 3))
            if name != "belt":
                r = int(rng.integers(5, 12))
                c = tuple(int(v) for v in rng.integers(r, size - r, 2))
                cv2.circle(img, c, r, tuple(float(v) for v in COLOURS[name]), -1)
            crops.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(k)
    n = len(crops)
    return CropSet(np.stack(crops), np.asarray(labels, np.int16), np.arange(n) % 3, NAMES)


def _tiny_config(**overrides: object) -> TrainConfig:
    """The small, fast training set-up every test here uses; ``overrides`` change fields."""
    fields: dict[str, object] = {
        "class_names": NAMES,
        "input_size_px": 32,
        "epochs": 15,
        "batch_size": 32,
        "widths": (8, 16),
        "threads": 1,
        "reject_class": "belt",
        **overrides,
    }
    return TrainConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainConfig, CropSet]:
    data = _crops(80, 0)
    config = _tiny_config(version="t-1")
    messages: list[str] = []
    result = train(data, config, val=_crops(10, 1), progress=messages.append)
    assert len(messages) == 15 and "epoch 15/15" in messages[-1] and "held-out" in messages[-1]
    path = export_onnx(result, config, tmp_path_factory.mktemp("m") / "m.onnx", data.crops)
    return path, config, data


def test_exported_model_metadata_and_accuracy(trained: tuple[Path, TrainConfig, CropSet]) -> None:
    path, config, _ = trained
    clf = OnnxClassifier.load(path, expected_classes=("red", "green", "blue"))
    assert clf.class_names == ("red", "green", "blue") and clf.input_size_px == 32
    info = clf.info
    assert info.reject_class == "belt" and info.version == "t-1"
    assert info.train_config_sha256 == config_sha256(config)
    assert json.loads(info.extra["sortline.train_config"])["epochs"] == 15
    report = evaluate(clf, _crops(20, 2))
    assert report.top1() > 0.9  # an easy problem
    d = report.to_dict()
    assert d["belt_marks_rejected"] > 0.8 and d["fragments_rejected"] < 0.1
    assert "| **red** |" in markdown_tables(report)


def test_dynamic_batch(trained: tuple[Path, TrainConfig, CropSet]) -> None:
    path, _, data = trained
    clf = OnnxClassifier.load(path)
    for n in (1, 7, 300):  # more than the 256 used for the export check
        assert clf.predict_raw(data.crops[:n]).shape == (n, 4)


def test_crop_set_round_trip_and_class_folders(tmp_path: Path) -> None:
    import cv2

    data = _crops(3, 5)
    mixed = tmp_path / "mixed"
    back = CropSet.load(data.save(mixed / "set.npz"))
    assert back.class_names == NAMES and np.array_equal(back.crops, data.crops)
    for name in ("red", "blue"):  # real crops: class folders beside the .npz
        (mixed / name).mkdir(parents=True)
        cv2.imwrite(str(mixed / name / "a.png"), np.zeros((20, 40, 3), np.uint8))
    (mixed / "red" / "notes.txt").write_text("ignored")
    folder = load_crop_folder(mixed, NAMES, 32)
    assert len(folder) == 2 and folder.crops.shape == (2, 32, 32, 3)
    assert sorted(folder.labels.tolist()) == [0, 2]
    both = load_training_data(mixed, NAMES, 32)
    assert len(both) == len(data) + 2


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("unknown_class", "folder name is not a class"),
        ("bad_image", "not a readable image"),
        ("bad_npz", "not a sortline crop set"),
        ("missing", "training data not found"),
    ],
)
def test_bad_training_data(tmp_path: Path, setup: str, words: str) -> None:
    from core.errors import InputFileError

    root = tmp_path / "data"
    if setup == "unknown_class":
        (root / "gold").mkdir(parents=True)
    elif setup == "bad_image":
        (root / "red").mkdir(parents=True)
        (root / "red" / "x.png").write_bytes(b"not a png")
    elif setup == "bad_npz":
        root.mkdir()
        (root / "x.npz").write_bytes(b"zip? no")
    with pytest.raises(InputFileError, match=words):
        load_training_data(root, NAMES, 32)


def test_checkpoint_fine_tune_keeps_what_was_learned(tmp_path: Path) -> None:
    from models.train import load_checkpoint, save_checkpoint

    data = _crops(80, 0)
    config = _tiny_config()
    first = train(data, config, progress=lambda _: None)
    ckpt = save_checkpoint(first, config, tmp_path / "m.pt")
    state, cfg, sha = load_checkpoint(ckpt)
    assert cfg["widths"] == [8, 16] and len(sha) == 64
    tuned_cfg = _tiny_config(epochs=1, lr=1e-4, init_from=sha)
    tuned = train(_crops(20, 3), tuned_cfg, progress=lambda _: None, init_state=state)
    assert tuned.mean_bgr == pytest.approx(first.mean_bgr, rel=1e-6)  # from the checkpoint
    path = export_onnx(tuned, tuned_cfg, tmp_path / "t.onnx", data.crops)
    assert evaluate(OnnxClassifier.load(path), _crops(20, 4)).top1() > 0.9


@pytest.mark.parametrize("mode", ["orient", "v1", "camera"])
def test_augment_modes(mode: str) -> None:
    from models.train import _augment

    x = torch.from_numpy(_crops(4, 3).crops)
    gen = torch.Generator().manual_seed(1)
    y = _augment(x, gen, mode)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    if mode == "orient":  # flips and quarter turns only: the same pixels, moved
        assert int(y.to(torch.int64).sum()) == int(x.to(torch.int64).sum())
    else:
        assert (y.to(torch.int16) - x.to(torch.int16)).abs().float().mean() > 1.0
