"""Validated struct-of-arrays batches: the one shape of data that crosses folders.

A batch is a frozen dataclass whose array fields share a leading length ``n``.
Each field declares its dtype and trailing shape in ``_SCHEMA``; on creation
every array is converted (never silently re-typed across kinds), checked,
made C-contiguous and read-only. ``len(batch)`` is ``n``; ``batch[mask]`` and
``batch[indices]`` return a batch of the same type with the selected rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

# field name -> (dtype, trailing shape); -1 in the trailing shape means "any
# width, but the same for every row" (e.g. K class probabilities).
Schema = dict[str, tuple[npt.DTypeLike, tuple[int, ...]]]


class BatchError(ValueError):
    """A batch was built from arrays of the wrong shape, dtype or length."""


def _as_field(name: str, value: Any, dtype: npt.DTypeLike, trailing: tuple[int, ...]) -> np.ndarray:
    arr = np.asarray(value)
    want = np.dtype(dtype)
    if arr.size and arr.dtype.kind != want.kind:
        ok_promote = (want.kind == "f" and arr.dtype.kind in "iu") or (
            want.kind in "iu" and arr.dtype.kind in "iu"
        )
        if not ok_promote:
            raise BatchError(f"field {name!r}: dtype {arr.dtype} cannot be used as {want}")
    if (
        want.kind in "iu"
        and arr.size
        and arr.dtype.kind in "iu"
        and not np.can_cast(arr.dtype, want, "safe")
    ):
        info = np.iinfo(want)
        if arr.min() < info.min or arr.max() > info.max:
            raise BatchError(f"field {name!r}: values outside the range of {want}")
    arr = np.ascontiguousarray(arr, dtype=want)
    if arr.ndim != 1 + len(trailing):
        raise BatchError(
            f"field {name!r}: expected {1 + len(trailing)} dimensions, got shape {arr.shape}"
        )
    for axis, size in enumerate(trailing, start=1):
        if size >= 0 and arr.shape[axis] != size:
            raise BatchError(f"field {name!r}: axis {axis} must be {size}, got shape {arr.shape}")
    if arr.flags.owndata or arr.base is None:
        arr.setflags(write=False)
    else:
        arr = arr.copy()
        arr.setflags(write=False)
    return arr


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    """Base of the struct-of-arrays batches. Subclasses set ``_SCHEMA``."""

    _SCHEMA: ClassVar[Schema] = {}

    def __post_init__(self) -> None:
        n: int | None = None
        for name, (dtype, trailing) in self._SCHEMA.items():
            arr = _as_field(name, getattr(self, name), dtype, trailing)
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise BatchError(
                    f"{type(self).__name__}: field {name!r} has {arr.shape[0]} rows, expected {n}"
                )
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        first = next(iter(self._SCHEMA))
        return int(getattr(self, first).shape[0])

    def _row_fields(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self._SCHEMA}

    def __getitem__(self, index: npt.ArrayLike | slice) -> Self:
        idx: Any = index if isinstance(index, slice) else np.asarray(index)
        if isinstance(idx, np.ndarray) and idx.dtype == bool and idx.shape != (len(self),):
            raise BatchError(f"boolean mask of shape {idx.shape} for a batch of {len(self)} rows")
        if isinstance(idx, np.ndarray) and idx.ndim == 0:
            idx = idx.reshape(1)
        kwargs: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, arr in self._row_fields().items():
            kwargs[name] = arr[idx]
        return type(self)(**kwargs)

    @classmethod
    def empty(cls, **scalars: Any) -> Self:
        """A batch of zero rows; ``scalars`` gives the non-array fields.

        Fields whose trailing width is -1 get width ``scalars.pop(name + "_width", 0)``.
        """
        kwargs: dict[str, Any] = {}
        for name, (dtype, trailing) in cls._SCHEMA.items():
            width = scalars.pop(f"{name}_width", 0)
            shape = (0, *[width if s < 0 else s for s in trailing])
            kwargs[name] = np.zeros(shape, dtype=dtype)
        kwargs.update(scalars)
        return cls(**kwargs)

    @classmethod
    def concat(cls, batches: list[Self], **scalars: Any) -> Self:
        """Rows of several batches in order; non-array fields from ``scalars``."""
        if not batches:
            return cls.empty(**scalars)
        kwargs: dict[str, Any] = {
            name: np.concatenate([getattr(b, name) for b in batches]) for name in cls._SCHEMA
        }
        kwargs.update(scalars)
        return cls(**kwargs)
