"""An if that returns, followed by the rest of the function: the rest is the other branch."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class ClipLarge(nn.Module):
    def forward(self, x):
        peak = x.abs().max()
        if peak > 4:
            return x / peak
        y = x * 2
        y = y + 1
        return y


model = ClipLarge()
example_args = (torch.randn(8),)
probe_args = [(torch.randn(8) * 10,), (torch.rand(8),)]
rewrites = 1
