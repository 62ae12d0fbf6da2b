"""A shape condition on a dynamic dim: both sides must stay in the program."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class PoolIfLong(nn.Module):
    def forward(self, x):
        if x.shape[1] >= 8:
            y = x.mean(dim=1, keepdim=True)
        else:
            y = x.amax(dim=1, keepdim=True)
        return x - y


model = PoolIfLong()
example_args = (torch.randn(2, 10),)
probe_args = [(torch.randn(2, 12),), (torch.randn(2, 4),), (torch.randn(2, 8),)]
dynamic = "x:1=seq[2,16]"
rewrites = 1
