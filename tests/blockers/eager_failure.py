"""A model that fails in plain Python on its example inputs (a shape mismatch), before any export."""
import torch
from torch import nn


class Mismatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 4)

    def forward(self, x):
        return self.proj(x)  # blocker: eager_failure


model = Mismatch()
example_args = (torch.randn(2, 6),)
