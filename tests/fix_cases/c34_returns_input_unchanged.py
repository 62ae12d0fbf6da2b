"""One side returns the input unchanged (`y = x`): a torch.cond branch may not return its input, so it is cloned."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class PassThrough(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            y = x
        else:
            y = x * -1
        return y


model = PassThrough()
example_args = (torch.randn(4, 4),)
probe_args = [(torch.ones(4, 4),), (-torch.ones(4, 4),)]
rewrites = 1
