"""A branch inside a `with` block, whose test reads a value computed under it."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Guarded(nn.Module):
    def forward(self, x):
        with torch.no_grad():
            energy = (x * x).mean()
            if energy > 1:
                x = x / energy.sqrt()
        return x + 1


model = Guarded()
example_args = (torch.randn(6),)
probe_args = [(torch.randn(6) * 10,), (torch.randn(6) * 0.1,)]
rewrites = 1
