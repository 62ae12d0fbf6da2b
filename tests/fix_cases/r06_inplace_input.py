"""Refused: a branch changes its input in place."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class InPlace(nn.Module):
    def forward(self, x):
        y = x * 1
        if y.sum() > 0:
            y.mul_(2)
        return y


model = InPlace()
example_args = (torch.randn(4),)
probe_args = [(torch.ones(4),), (-torch.ones(4),)]
refusal = "side-effect"
