"""Refused: a while loop on a tensor condition is not a branch torch.cond can express."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Shrink(nn.Module):
    def forward(self, x):
        while x.abs().max() > 1:
            x = x / 2
        return x


model = Shrink()
example_args = (torch.randn(3) * 4,)
probe_args = [(torch.randn(3) * 100,), (torch.rand(3) * 0.5,)]
refusal = "no-rule"
