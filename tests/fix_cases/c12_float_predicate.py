"""float(tensor) in the condition: kept as a tensor."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class FloatGate(nn.Module):
    def forward(self, x):
        if float(x.sum()) > 0.0:
            return x.exp()
        return x


model = FloatGate()
example_args = (torch.randn(4),)
probe_args = [(torch.ones(4),), (-torch.ones(4),)]
rewrites = 1
