"""A transpose of an input on one side and a slice of it on the other: both alias the input, and the transpose
is laid out unlike the slice, so torch also asks for one stride order (`.contiguous()` on both sides)."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Turn(nn.Module):
    def forward(self, x):
        if x[0, 0] > 0:
            return torch.transpose(x, 0, 1)
        return x[:, :4]


model = Turn()
example_args = (torch.randn(4, 4),)
probe_args = [(torch.ones(4, 4),), (-torch.ones(4, 4),), (torch.randn(4, 4),)]
rewrites = 2
