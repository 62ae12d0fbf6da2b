"""Comments inside the branches move with their statements; a variable assigned twice on one side
(`y = x * 2`, then `y = y + 1`) is still known to be a tensor."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Commented(nn.Module):
    def forward(self, x):
        # decide the scale
        if x.sum() > 0:
            # positive: double it
            y = x * 2
            # and shift
            y = y + 1
        else:
            # negative: halve it
            y = x / 2
        return y


model = Commented()
example_args = (torch.randn(3),)
probe_args = [(torch.ones(3),), (-torch.ones(3),)]
rewrites = 1
