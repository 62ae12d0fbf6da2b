"""A model that writes into its input: each call must get its own copy, or eager and artifact see different x."""
import torch
from torch import nn


class Inplace(nn.Module):
    def forward(self, x):
        x.mul_(2)
        return x + 1


model = Inplace().eval()
example_args = (torch.randn(3, 4),)
