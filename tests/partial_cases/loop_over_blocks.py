"""A `while` on tensor values at the top, two identical blocks and one of another width: two groups."""

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.eps = 1e-5

    def forward(self, x):
        return x + torch.tanh(self.fc(x)) * (1 + self.eps)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Block(32)
        self.b = Block(32)
        self.wide = nn.Sequential(nn.Linear(32, 64), Block(64), nn.Linear(64, 32))

    def forward(self, x):
        while x.abs().max() > 1:  # a loop on tensor values: the top level does not export
            x = x / 2
        return self.wide(self.b(self.a(x)))


def model():
    torch.manual_seed(0)
    return Model().eval()


example_args = (torch.randn(4, 32),)
