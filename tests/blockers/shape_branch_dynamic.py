"""A Python branch on a dim declared dynamic: the export holds for only part of the range."""
import torch
from torch import nn


class BranchOnBatch(nn.Module):
    def forward(self, x):
        if x.shape[0] > 5:  # blocker: dynamic_shape_violation
            return x + 1
        else:
            return x - 1


model = BranchOnBatch()
example_args = (torch.randn(10, 2),)
dynamic = "x:0=batch"
