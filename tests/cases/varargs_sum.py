"""A forward that takes `*args`: every positional input must reach the program, unnamed."""
import torch
from torch import nn


class SumAll(nn.Module):
    def forward(self, *xs):
        return sum(xs)


model = SumAll()
example_args = (torch.randn(2, 3), torch.randn(2, 3))
