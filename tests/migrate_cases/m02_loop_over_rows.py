"""A loop whose trip count is the input's first size: torch's converter stops; pt2kit fixes the count."""
import torch
from torch import nn


class LoopOverRows(nn.Module):
    def forward(self, x):
        y = torch.zeros_like(x[0])
        for i in range(x.shape[0]):
            y = y + x[i] * (i + 1)
        return y


model = LoopOverRows()
how = "script"
inputs = ["x=float32[3,5]"]
expect = "specialize"
