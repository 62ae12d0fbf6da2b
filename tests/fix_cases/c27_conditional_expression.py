"""Conditional expressions (`a if c else b`) on tensor conditions, assigned and returned."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Ternary(nn.Module):
    def forward(self, x):
        y = x * 2 if x.mean() > 0 else x - 1
        return y.relu() if y.sum() > 1 else y.abs()


model = Ternary()
example_args = (torch.randn(5),)
probe_args = [(torch.ones(5),), (-torch.ones(5),), (torch.full((5,), 0.1),), (torch.full((5,), -5.0),)]
rewrites = 2
