"""Returns a dataclass holding tensors, a list of tensors, a constant dtype and a nested plain object.

None of these types is a pytree node, so plain `torch.export` refuses the output; pt2kit registers
them (flattened by attribute) and the program returns the same objects.
"""
from dataclasses import dataclass

import torch
from torch import nn

torch.manual_seed(0)


class Stats:
    def __init__(self, mean, label):
        self.mean = mean
        self.label = label  # a string: kept in the spec as a constant


@dataclass
class Detections:
    boxes: torch.Tensor
    scores: list
    dtype: torch.dtype
    stats: Stats
    count: int


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        h = self.head(x)
        return Detections(h[..., :4], [h[..., 4], h[..., 4].sigmoid()], h.dtype, Stats(h.mean(), "head"), 2)


model = Detector().eval()
example_args = (torch.randn(3, 8),)
dynamic = "x:0=batch[1,32]"
tags = {"pytree", "dataclass"}
