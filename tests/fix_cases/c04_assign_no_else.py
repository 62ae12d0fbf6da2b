"""One variable assigned on one side only: the other side passes the current value through."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class DoubleIfPositive(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            x = x * 2
        return x + 1


model = DoubleIfPositive()
example_args = (torch.randn(2, 3),)
probe_args = [(torch.ones(2, 3),), (-torch.ones(2, 3),)]
rewrites = 1
