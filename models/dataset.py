"""Labelled crop sets: the training and evaluation data of the classifier.

A ``CropSet`` holds crops exactly as the runtime cuts them (``vision.crops``),
their labels, and the scene each came from (so held-out splits never share a
scene). Stored as ``.npz``. A folder of labelled real crops (one sub-folder per
class, image files inside) loads into the same type.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import InputFileError

__all__ = ["IMAGE_SUFFIXES", "CropSet", "load_crop_folder", "load_training_data"]

EXTRA_PREFIX = "x_"  # .npz keys of the optional per-crop columns
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class CropSet:
    """crops:  (N, S, S, 3) uint8 BGR.
    labels: (N,) int16 index into ``class_names``.
    group:  (N,) int32 scene (or source folder) id, for splits that keep scenes apart.
    class_names: the label order.
    extra:  optional per-crop columns, each (N,), e.g. ``fragment`` (int64
            ground-truth fragment id within its scene, -1 for belt marks),
            ``purity`` (float32), ``truncated`` (bool, cut by the image
            border), ``area_px`` (float32 fragment pixels at full resolution).
    """

    crops: np.ndarray
    labels: np.ndarray
    group: np.ndarray
    class_names: tuple[str, ...]
    extra: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.crops.shape[0]
        if self.crops.dtype != np.uint8 or self.crops.ndim != 4 or self.crops.shape[3] != 3:
            raise ValueError(f"crops must be (N, S, S, 3) uint8, got {self.crops.shape}")
        if self.labels.shape != (n,) or self.group.shape != (n,):
            raise ValueError("labels and group need one entry per crop")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.class_names)):
            raise ValueError("a label is outside the class list")
        for key, col in self.extra.items():
            if col.shape != (n,):
                raise ValueError(f"extra column {key!r} needs one entry per crop")

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    @property
    def size_px(self) -> int:
        return int(self.crops.shape[1])

    def subset(self, mask: np.ndarray) -> CropSet:
        extra = {k: v[mask] for k, v in self.extra.items()}
        return CropSet(
            self.crops[mask], self.labels[mask], self.group[mask], self.class_names, extra
        )

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(k) for name, k in zip(self.class_names, c, strict=True)}

    @classmethod
    def empty(cls, class_names: Sequence[str], size_px: int) -> CropSet:
        return cls(
            np.zeros((0, size_px, size_px, 3), np.uint8),
            np.zeros(0, np.int16),
            np.zeros(0, np.int32),
            tuple(class_names),
        )

    @classmethod
    def concat(cls, sets: Sequence[CropSet]) -> CropSet:
        if not sets:
            raise ValueError("nothing to concatenate")
        names = sets[0].class_names
        for s in sets[1:]:
            if s.class_names != names or s.size_px != sets[0].size_px:
                raise ValueError("crop sets with different classes or crop sizes")
        keys = set.intersection(*(set(s.extra) for s in sets))  # columns every set has
        return cls(
            np.concatenate([s.crops for s in sets]),
            np.concatenate([s.labels for s in sets]).astype(np.int16),
            np.concatenate([s.group for s in sets]).astype(np.int32),
            names,
            {k: np.concatenate([s.extra[k] for s in sets]) for k in sorted(keys)},
        )

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "crops": self.crops,
            "labels": self.labels,
            "group": self.group,
            "class_names": json.dumps(list(self.class_names)),
            **{EXTRA_PREFIX + k: v for k, v in self.extra.items()},
        }
        np.savez_compressed(p, **arrays)
        return p

    @classmethod
    def load(cls, path: str | Path) -> CropSet:
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                names = tuple(json.loads(str(z["class_names"])))
                keys = [k for k in z.files if k.startswith(EXTRA_PREFIX)]
                extra = {k.removeprefix(EXTRA_PREFIX): z[k] for k in keys}
                return cls(
                    z["crops"],
                    z["labels"].astype(np.int16),
                    z["group"].astype(np.int32),
                    names,
                    extra,
                )
        except FileNotFoundError:
            raise InputFileError(p, "crop set not found") from None
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            raise InputFileError(p, f"not a sortline crop set: {exc}") from None

    def remap(self, class_names: Sequence[str]) -> CropSet:
        """The same crops labelled against another class order (names must all exist)."""
        target = {n: i for i, n in enumerate(class_names)}
        missing = [n for n in self.class_names if n not in target]
        if missing:
            raise ValueError(f"classes {missing} are not in {list(class_names)}")
        lut = np.array([target[n] for n in self.class_names], np.int16)
        return CropSet(
            self.crops,
            lut[self.labels] if len(self) else self.labels,
            self.group,
            tuple(class_names),
            self.extra,
        )


def _square_resize(img: np.ndarray, size_px: int) -> np.ndarray:
    """Pad to a square with edge colour, then resize to ``size_px``."""
    h, w = img.shape[:2]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    sq = cv2.copyMakeBorder(img, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if side > size_px else cv2.INTER_LINEAR
    return cv2.resize(sq, (size_px, size_px), interpolation=interp)


def load_crop_folder(
    folder: str | Path, class_names: Sequence[str], size_px: int, group_id: int = 1_000_000
) -> CropSet:
    """Labelled real crops: ``folder/<class>/*.png|jpg|...``; unknown class folders refused."""
    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(root, "crop folder not found")
    index = {n: i for i, n in enumerate(class_names)}
    crops: list[np.ndarray] = []
    labels: list[int] = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir()):
        if sub.name not in index:
            raise InputFileError(sub, f"folder name is not a class (classes: {list(class_names)})")
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is None:
                raise InputFileError(f, "not a readable image")
            crops.append(_square_resize(img, size_px))
            labels.append(index[sub.name])
    if not crops:
        return CropSet.empty(class_names, size_px)
    return CropSet(
        np.stack(crops),
        np.asarray(labels, np.int16),
        np.full(len(crops), group_id, np.int32),
        tuple(class_names),
    )


def load_training_data(path: str | Path, class_names: Sequence[str], size_px: int) -> CropSet:
    """``path`` is a ``.npz`` crop set, a folder of them, or a folder of class folders."""
    p = Path(path)
    if p.is_file():
        return CropSet.load(p).remap(class_names)
    if not p.is_dir():
        raise InputFileError(p, "training data not found")
    sets = [CropSet.load(f).remap(class_names) for f in sorted(p.glob("*.npz"))]
    if any(d.is_dir() for d in p.iterdir()):
        sets.append(load_crop_folder(p, class_names, size_px))
    sets = [s for s in sets if len(s)]
    for s in sets:
        if s.size_px != size_px:
            raise InputFileError(p, f"crops are {s.size_px} px, the model wants {size_px} px")
    if not sets:
        raise InputFileError(p, "no crops found (.npz crop sets or class folders of images)")
    return CropSet.concat(sets)
