"""Both sides return a tuple of tensors."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Pair(nn.Module):
    def forward(self, x):
        if x.norm() > 1:
            return x / x.norm(), x.norm()
        else:
            return x, torch.ones(())


model = Pair()
example_args = (torch.randn(3),)
probe_args = [(torch.randn(3) * 10,), (torch.rand(3) * 0.1,)]
rewrites = 1
