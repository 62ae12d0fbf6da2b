"""A reshape (function form) of an input on one side, a view of a new tensor on the other: only the view of the
input aliases it, so only that side is cloned."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Flatten(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            out = torch.reshape(x, (2, 8))
        else:
            out = x.flip(0).view(2, 8)
        return out


model = Flatten()
example_args = (torch.randn(4, 4),)
probe_args = [(torch.ones(4, 4),), (-torch.ones(4, 4),)]
rewrites = 1
