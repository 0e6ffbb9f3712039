"""The sortline fragment classifier network (PyTorch; training extra only).

Input (N, S, S, 3) uint8 BGR crops, normalised inside the graph so the ONNX
model takes camera pixels as they are; output (N, K) softmax probabilities.
Stride-2 3x3 convolutions (optionally one more 3x3 at stride 1 at the end)
with batch norm, then global average and max pooling and a linear head:
small enough for thousands of crops per second on one CPU core.

``fuse_input()`` (done before export) folds the normalisation into the first
convolution: the graph then only subtracts the mean pixel (exact, because
zero padding of the normalised input is zero padding of the mean-subtracted
one), saving two full-image elementwise passes per crop.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SortlineCNN"]


def _block(c_in: int, c_out: int, stride: int = 2) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SortlineCNN(nn.Module):
    def __init__(
        self,
        n_classes: int,
        mean_bgr: Sequence[float],
        std_bgr: Sequence[float],
        widths: Sequence[int] = (16, 32, 48, 64),
        dropout: float = 0.2,
        extra_conv: int = 0,
    ) -> None:
        """widths: channels of the stride-2 blocks; extra_conv > 0 adds a 3x3
        stride-1 block of that many channels after them."""
        super().__init__()
        chans = [3, *widths]
        blocks = [_block(a, b) for a, b in itertools.pairwise(chans)]
        if extra_conv > 0:
            blocks.append(_block(widths[-1], extra_conv, stride=1))
        last = extra_conv if extra_conv > 0 else widths[-1]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * last, n_classes))
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean_bgr, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std_bgr, dtype=torch.float32).view(1, 3, 1, 1))
        self.fused = False

    def fuse_input(self) -> SortlineCNN:
        """Fold (x / 255 - mean) / std into the first convolution (in place, eval only)."""
        if not self.fused:
            block = self.features[0]
            assert isinstance(block, nn.Sequential)
            conv = block[0]
            assert isinstance(conv, nn.Conv2d)
            with torch.no_grad():
                conv.weight.div_((255.0 * self.std).view(1, 3, 1, 1))
            self.fused = True
        return self

    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) uint8 -> (N, K) logits."""
        if self.fused:
            x = crops.permute(0, 3, 1, 2).to(torch.float32) - 255.0 * self.mean
        else:
            x = crops.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
            x = (x - self.mean) / self.std
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) uint8 -> (N, K) probabilities."""
        return torch.softmax(self.logits(crops), dim=1)
