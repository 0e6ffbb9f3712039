"""Batches from arrays the kernels just produced, without re-validating them.

``core.batch.Batch.__post_init__`` converts and checks every field (dtype
kind, range, shape, contiguity, a copy when the array is a view): right at
a folder boundary, but about 40 us per batch at 1,000 rows, paid twice a
frame for arrays that ``control.kernels`` allocated a moment ago with the
schema's exact dtypes. ``trusted_batch`` skips that work and only freezes
the arrays; ``tests/control/test_fastbatch.py`` checks that every batch
built this way equals the validated one.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

from core.batch import Batch

__all__ = ["trusted_batch"]

B = TypeVar("B", bound=Batch)


def trusted_batch(cls: type[B], **fields: Any) -> B:
    """A ``cls`` batch over ``fields`` as given; array fields are made read-only.

    Every array must be fresh (owned, C-contiguous), of the dtype and trailing
    shape ``cls._SCHEMA`` declares, all of one length: the caller guarantees
    it (kernels that allocate their outputs), nothing here checks it.
    """
    obj = object.__new__(cls)
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        object.__setattr__(obj, name, value)
    return obj
