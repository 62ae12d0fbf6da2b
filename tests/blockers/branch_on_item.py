"""A branch on `.item()`: the seed notebook's `UntraceableModule`, on a one-element tensor."""
import torch
from torch import nn


class BranchOnItem(nn.Module):
    def forward(self, x, scale):
        out = x * 2
        if scale.item() > 0.5:  # blocker: data_dependent_branch
            out = out + scale
        return out


model = BranchOnItem()
example_args = (torch.randn(2, 3), torch.tensor(0.7))
