"""Refused: the two sides return different dtypes."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Quantize(nn.Module):
    def forward(self, x):
        if x.abs().max() > 10:
            return (x / 10).round().to(torch.int64)
        return x


model = Quantize()
example_args = (torch.randn(4),)
probe_args = [(torch.randn(4) * 100,), (torch.rand(4),)]
refusal = "branch-mismatch"
