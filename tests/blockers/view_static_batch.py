"""A dim declared dynamic that the code pins to its example size."""
import torch
from torch import nn


class FixedView(nn.Module):
    def forward(self, x):
        return x.view(4, 2) + 1  # blocker: dynamic_shape_violation


model = FixedView()
example_args = (torch.randn(4, 2),)
dynamic = "x:0=batch"
