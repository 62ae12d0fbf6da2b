"""A derived dim: `x` is concatenated with itself, then added to `y`, so `y.shape[1] == 2*x.shape[1]`.

Declared independently (`x:1=n,y:1=m`), export fails with "m = 2*n"; repair derives `y:1=2*n`.
"""
import torch
from torch import nn


class ConcatSelf(nn.Module):
    def forward(self, x, y):
        return torch.cat([x, x], dim=1) + y


model = ConcatSelf()
example_args = (torch.randn(2, 3), torch.randn(2, 6))
dynamic = "x:1=n[1,16],y:1=2*n"
tags = {"dynamic-shape", "derived-dim", "repair"}
