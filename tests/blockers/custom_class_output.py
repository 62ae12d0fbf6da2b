"""An output of a user class torch.export does not know how to flatten."""
import torch
from torch import nn


class Result:
    def __init__(self, logits, hidden):
        self.logits = logits
        self.hidden = hidden


class ReturnsResult(nn.Module):
    def forward(self, x):
        h = x.tanh()
        return Result(h * 2, h)  # blocker: non_pytree_type


model = ReturnsResult()
example_args = (torch.randn(2, 3),)
