"""`.item()` used as a loop count: export needs a concrete int for `range`."""
import torch
from torch import nn


class RepeatN(nn.Module):
    def forward(self, x, n):
        steps = n.item()
        out = x
        for _ in range(steps):  # blocker: data_dependent_value
            out = out * 0.5 + x
        return out


model = RepeatN()
example_args = (torch.randn(2, 2), torch.tensor(3))
