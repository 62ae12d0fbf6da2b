"""A branch in a block's forward, blocks called in a loop over nn.ModuleList."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Gate(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        h = self.proj(x)
        if h.mean() > 0:
            h = torch.relu(h)
        else:
            h = torch.tanh(h) * 0.1
        return x + h


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Gate(6) for _ in range(3)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


model = Tower()
example_args = (torch.randn(2, 6),)
probe_args = [(torch.randn(2, 6),), (torch.randn(2, 6) * 50,), (-torch.randn(2, 6) * 50,)]
rewrites = 1
