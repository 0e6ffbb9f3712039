"""``Frame``: one camera image with the encoder count at its exposure."""

from __future__ import annotations

import dataclasses

import numpy as np


class FrameError(ValueError):
    """A frame of the wrong size, type or content."""


@dataclasses.dataclass(frozen=True, slots=True)
class Frame:
    """image:          (H, W, 3) uint8 BGR, read-only, or (H, W) uint8 mono.
    frame_id:       counter of the source, increasing by one per frame it produced
                    (a gap means the source skipped frames).
    tick:           encoder count (uint32) at exposure.
    t_s:            exposure time, seconds on the source's monotonic clock.
    tick_estimated: True when ``tick`` comes from belt speed and timestamps
                    because no encoder is wired (said so in every frame).
    """

    image: np.ndarray
    frame_id: int
    tick: int
    t_s: float
    tick_estimated: bool = False

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise FrameError(f"frame {self.frame_id}: image is {type(img).__name__}, not an array")
        if img.dtype != np.uint8:
            raise FrameError(f"frame {self.frame_id}: image dtype {img.dtype}, expected uint8")
        if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise FrameError(
                f"frame {self.frame_id}: image shape {img.shape}, expected HxWx3 or HxW"
            )
        if not 0 <= int(self.tick) < 1 << 32:
            raise FrameError(f"frame {self.frame_id}: tick {self.tick} is not a uint32 count")
        if img.flags.writeable:
            img = img.copy() if not img.flags.c_contiguous else img
            img.setflags(write=False)
            object.__setattr__(self, "image", img)

    def check_size(self, width_px: int, height_px: int) -> None:
        h, w = self.image.shape[:2]
        if (w, h) != (width_px, height_px):
            raise FrameError(
                f"frame {self.frame_id}: {w}x{h} px, the camera is configured for "
                f"{width_px}x{height_px}"
            )
