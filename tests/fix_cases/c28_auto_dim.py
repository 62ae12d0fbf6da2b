"""A shape branch on a dim declared `auto`: without --fix torch narrows the dim to the example's side;
with --fix both sides stay and the program takes sizes on either side."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class LongOrShort(nn.Module):
    def forward(self, tokens):
        if tokens.size(1) > 16:
            tokens = tokens * 0.5
        return tokens.cumsum(dim=1)


model = LongOrShort()
example_args = (torch.randn(2, 24),)
probe_args = [(torch.randn(2, 40),), (torch.randn(2, 8),), (torch.randn(2, 17),)]
dynamic = "tokens:1=auto"
rewrites = 1
