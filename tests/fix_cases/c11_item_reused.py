"""A .item() value in the condition and reused inside the branch and after it."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Normalize(nn.Module):
    def forward(self, x):
        peak = x.abs().max().item()
        if peak > 2.0:
            x = x / peak
        return x * peak


model = Normalize()
example_args = (torch.randn(10),)
probe_args = [(torch.randn(10) * 10,), (torch.rand(10) * 0.5,)]
rewrites = 1
