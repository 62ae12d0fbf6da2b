"""Two dims declared independent that the code requires equal."""
import torch
from torch import nn


class AddTwo(nn.Module):
    def forward(self, x, y):
        return x + y  # blocker: dynamic_shape_violation


model = AddTwo()
example_args = (torch.randn(4, 2), torch.randn(4, 2))
dynamic = "x:0=a,y:0=b"
