"""An early `return` under a data-dependent `if`: the rest of the function is the other branch."""
import torch
from torch import nn


class EarlyReturn(nn.Module):
    def forward(self, x):
        m = x.mean()
        if m > 0:  # blocker: data_dependent_branch
            return x - m
        y = x * 3
        return y + 1


model = EarlyReturn()
example_args = (torch.randn(5),)
