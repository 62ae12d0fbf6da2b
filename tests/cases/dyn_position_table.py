"""A learned position table of 16 rows: the sequence can be at most 16 long.

Declared `x:0=seq[2,64]`, export fails ("satisfy the generated guard ... <= 16") and suggests
`seq = Dim('seq', max=16)`; repair narrows the range, since the limit is the model's table.
"""
import torch
from torch import nn

torch.manual_seed(0)


class PositionTable(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(16, 3))

    def forward(self, x):
        return x + self.pos[: x.shape[0]]


model = PositionTable().eval()
example_args = (torch.randn(4, 3),)
tags = {"dynamic-shape", "repair", "narrow"}
