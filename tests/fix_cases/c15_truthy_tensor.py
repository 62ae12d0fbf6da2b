"""A tensor used directly as the condition (truthiness), and .any()."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Truthy(nn.Module):
    def forward(self, x):
        if (x > 3).any():
            x = x.clamp(max=3)
        if x.sum():
            x = x / 2
        return x


model = Truthy()
example_args = (torch.randn(4),)
probe_args = [(torch.tensor([5.0, 1.0, 0.0, 0.0]),), (torch.zeros(4),), (torch.tensor([1.0, -1.0, 2.0, 0.0]),)]
rewrites = 2
