"""A loop over `x.unbind(0)`: its count is a list's length, which neither converter pass can fix; non-strict
export runs the TorchScript interpreter and unrolls it at the example's size."""
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
