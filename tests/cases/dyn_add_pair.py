"""Two inputs added together: their batch dims are one dim (`b2 = b1`), whatever names were declared."""
import torch
from torch import nn


class AddPair(nn.Module):
    def forward(self, x, y):
        return x * 2 + y


model = AddPair()
example_args = (torch.randn(4, 3), torch.randn(4, 3))
tags = {"dynamic-shape", "shared-dim", "repair"}
