"""A data-dependent if inside a for loop of the same function (assignment form; the loop is unrolled)."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Clipped(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
            if x.norm() > 5:
                x = x * (5 / x.norm())
        return x


model = Clipped()
example_args = (torch.randn(2, 4),)
probe_args = [(torch.randn(2, 4) * 100,), (torch.randn(2, 4) * 0.01,)]
rewrites = 1
