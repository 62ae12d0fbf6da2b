"""Refused: the two sides return tensors of different shapes."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Reduce(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x.sum(dim=0)
        return x


model = Reduce()
example_args = (torch.randn(3, 4),)
probe_args = [(torch.ones(3, 4),), (-torch.ones(3, 4),)]
refusal = "branch-mismatch"
