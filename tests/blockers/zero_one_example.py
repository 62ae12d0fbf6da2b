"""An example of size 1 on a dim declared dynamic: export specializes sizes 0 and 1."""
import torch
from torch import nn


class Scale(nn.Module):
    def forward(self, x):  # blocker: zero_one_specialization
        return x * 3


model = Scale()
example_args = (torch.randn(1, 8),)
dynamic = "x:0=batch"
