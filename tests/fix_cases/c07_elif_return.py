"""An elif chain where every side returns."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class ThreeWay(nn.Module):
    def forward(self, x):
        m = x.mean()
        if m > 1:
            return x - 1
        elif m < -1:
            return x + 1
        else:
            return x * 0.5


model = ThreeWay()
example_args = (torch.randn(4),)
probe_args = [(torch.full((4,), 3.0),), (torch.full((4,), -3.0),), (torch.zeros(4),)]
rewrites = 2
