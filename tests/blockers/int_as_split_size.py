"""`int(tensor)` used as a split size."""
import torch
from torch import nn


class SplitBy(nn.Module):
    def forward(self, x, size):
        k = int(size)  # blocker: data_dependent_value
        parts = x.split(k)  # blocker: data_dependent_value
        return parts[0]


model = SplitBy()
example_args = (torch.randn(10), torch.tensor(4))
