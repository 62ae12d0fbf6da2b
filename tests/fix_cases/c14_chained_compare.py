"""A chained comparison on a tensor: 0 < m < 1 is (0 < m) & (m < 1)."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Band(nn.Module):
    def forward(self, x):
        m = x.mean()
        if 0 < m < 1:
            return x - m
        return x


model = Band()
example_args = (torch.randn(6),)
probe_args = [(torch.full((6,), 0.5),), (torch.full((6,), 2.0),), (torch.full((6,), -2.0),)]
rewrites = 1
