"""The else side returns and the if side falls through to the rest of the function."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Rectify(nn.Module):
    def forward(self, x):
        if x.min() < 0:
            x = x - x.min()
        else:
            return x * 2
        return x.sqrt()


model = Rectify()
example_args = (torch.randn(5),)
probe_args = [(torch.randn(5) - 3,), (torch.rand(5) + 1,)]
rewrites = 1
