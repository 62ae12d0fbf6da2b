"""A selection between two inputs: each side returns one of them as it is."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Pick(nn.Module):
    def forward(self, x, y):
        if x.sum() > y.sum():
            return x
        return y


model = Pick()
example_args = (torch.randn(3, 5), torch.randn(3, 5))
probe_args = [(torch.ones(3, 5), torch.zeros(3, 5)), (torch.zeros(3, 5), torch.ones(3, 5))]
rewrites = 1
