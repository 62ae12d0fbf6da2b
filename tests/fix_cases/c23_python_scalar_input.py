"""A Python-number parameter used inside the branch is closed over, not passed as an operand."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Scaled(nn.Module):
    def forward(self, x, scale: float = 2.0):
        if x.sum() > 0:
            x = x * scale
        return x


model = Scaled()
example_args = (torch.randn(4), 3.0)
probe_args = [(torch.ones(4), 3.0), (-torch.ones(4), 3.0)]
rewrites = 1
