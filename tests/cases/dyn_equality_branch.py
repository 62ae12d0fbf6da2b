"""A size branch on equality, inside a submodule: `if x.shape[1] == 8:` pins the dim to 8.

Declared dynamic (`x:1=feat`), torch suggests `feat = 8`. That constant comes from a Python branch,
so repair must not apply it: the program would silently keep only the `== 8` side.
"""
import torch
from torch import nn


class Scale(nn.Module):
    def forward(self, x):
        if x.shape[1] == 8:
            return x * 3
        return x


class WithScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = Scale()

    def forward(self, x):
        return self.scale(x) + 1


model = WithScale()
example_args = (torch.randn(2, 8),)
tags = {"dynamic-shape", "repair", "shape-branch"}
