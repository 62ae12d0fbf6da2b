"""Refused: a data-dependent break out of a loop."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Halve(nn.Module):
    def forward(self, x):
        for _ in range(4):
            if x.abs().max() < 1:
                break
            x = x / 2
        return x


model = Halve()
example_args = (torch.randn(3) * 4,)
probe_args = [(torch.randn(3) * 100,), (torch.rand(3) * 0.5,)]
refusal = "loop-control"
