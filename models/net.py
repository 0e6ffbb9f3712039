"""The sortline fragment classifier network (PyTorch; training extra only).

Input (N, S, S, 3) uint8 BGR crops, normalised inside the graph so the ONNX
model takes camera pixels as they are; output (N, K) softmax probabilities.
Four stride-2 3x3 convolutions (about 2.4 M multiply-adds per 64x64 crop)
then global average and max pooling: small enough for thousands of crops per
second on one CPU core.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["SortlineCNN"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
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
    ) -> None:
        super().__init__()
        chans = [3, *widths]
        self.features = nn.Sequential(*[_block(a, b) for a, b in itertools.pairwise(chans)])
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], n_classes))
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean_bgr, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std_bgr, dtype=torch.float32).view(1, 3, 1, 1))

    def logits(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) uint8 -> (N, K) logits."""
        x = crops.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        x = (x - self.mean) / self.std
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) uint8 -> (N, K) probabilities."""
        return torch.softmax(self.logits(crops), dim=1)
