"""An elif chain that assigns, with no else."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Bucket(nn.Module):
    def forward(self, x):
        out = x
        if x.max() > 10:
            out = x / 10
        elif x.max() > 1:
            out = x / x.max()
        return out.tanh()


model = Bucket()
example_args = (torch.randn(5),)
probe_args = [(torch.full((5,), 20.0),), (torch.full((5,), 5.0),), (torch.zeros(5),)]
rewrites = 2
