"""NaN at input-dependent positions: `model` is NaN where x < 0; `shifted` where x < 0.5 (same finite values)."""
import torch
from torch import nn


class NanWhereBelow(nn.Module):
    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = threshold

    def forward(self, x):
        return torch.where(x < self.threshold, torch.nan, x * 2)


model = NanWhereBelow(0.0).eval()
shifted = NanWhereBelow(0.5).eval()
example_args = (torch.randn(6, 5),)
dynamic = "x:0=batch[1,16]"
