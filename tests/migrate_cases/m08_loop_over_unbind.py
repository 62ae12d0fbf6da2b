"""A loop over `x.unbind(0)`: a list's length no converter pass fixes; non-strict export unrolls it.

Non-strict export runs the TorchScript interpreter, which iterates the list at the example's size.
"""
from typing import List

import torch
from torch import nn


class LoopOverUnbind(nn.Module):
    def forward(self, x):
        outs: List[torch.Tensor] = []
        for row in x.unbind(0):
            outs.append(row * row.sum())
        return torch.stack(outs)


model = LoopOverUnbind()
how = "script"
inputs = ["x=float32[3,4]"]
expect = "non-strict"
