"""Refused: a side that raises is a run-time check, not a branch; the report gives the exportable check."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class NanGuard(nn.Module):
    def forward(self, x):
        if torch.isnan(x).any():
            raise ValueError("nan in input")
        return x * 2


model = NanGuard()
example_args = (torch.randn(4),)
probe_args = [(torch.ones(4),)]
refusal = "raises"
