"""An input of a user class torch.export does not know how to flatten."""
import torch
from torch import nn


class Pair:
    def __init__(self, first, second):
        self.first = first
        self.second = second


class SumPair(nn.Module):
    def forward(self, pair):  # blocker: non_pytree_type
        return pair.first + pair.second


model = SumPair()
example_args = (Pair(torch.randn(2), torch.randn(2)),)
