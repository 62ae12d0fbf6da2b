"""A conditional expression on a tensor value."""
import torch
from torch import nn


class Ternary(nn.Module):
    def forward(self, x):
        y = x.cos() if x.max() > 1 else x.sin()  # blocker: data_dependent_branch
        return y * 2


model = Ternary()
example_args = (torch.randn(4, 4),)
