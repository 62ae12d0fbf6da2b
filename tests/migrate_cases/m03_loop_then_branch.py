"""A size-driven loop, then a branch on values: needs the loop fixed and the branch kept as torch.cond."""
import torch
from torch import nn


class LoopThenBranch(nn.Module):
    def forward(self, x):
        y = x
        for _ in range(x.size(1)):
            y = torch.tanh(y) + 0.1
        if y.mean() > 0.5:
            y = y * 2
        else:
            y = y - 3
        return y


model = LoopThenBranch()
how = "script"
inputs = ["x=float32[2,3]"]
expect = "specialize"
