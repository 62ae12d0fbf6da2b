"""if/else where both sides return, on a tensor reduction."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class SignDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x.sin()
        else:
            return x.cos()


model = SignDependent()
example_args = (torch.randn(3, 4),)
probe_args = [(torch.ones(3, 4),), (-torch.ones(3, 4),)]
rewrites = 1
