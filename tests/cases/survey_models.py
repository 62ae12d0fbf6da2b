"""Three models for `pt2kit survey`: one that exports, one with a data-dependent branch, one that cannot be built."""
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)


class Branchy(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # depends on the values: export cannot decide it
            return x * 2
        return x - 1


def broken():
    raise RuntimeError("this factory fails on purpose")


SURVEY = {
    "mlp": {"model": MLP, "args": (torch.randn(3, 8),)},
    "branchy": {"model": Branchy(), "inputs": ["x=float32[3,8]"]},
    "broken": {"model": broken, "args": (torch.randn(3, 8),)},
}
