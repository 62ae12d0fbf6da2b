"""A `torch.cond` written by hand whose branch returns its input: torch refuses the alias, `--fix` clones it."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Handwritten(nn.Module):
    def forward(self, x):
        def keep(x):
            return x

        def double(x):
            return x * 2

        return torch.cond(x.sum() > 0, keep, double, (x,))


model = Handwritten()
example_args = (torch.randn(6),)
probe_args = [(torch.ones(6),), (-torch.ones(6),)]
rewrites = 1
