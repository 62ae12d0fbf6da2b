"""A model whose top level cannot be exported, around blocks that can (a case of `pt2kit compile --partial`).

    pt2kit compile examples/partial_refiner.py:refiner --partial -o out/refiner.regions.pt2
    pt2kit verify examples/partial_refiner.py:refiner out/refiner.regions.pt2
"""

import numpy as np
import torch
from torch import nn


class MLPBlock(nn.Module):
    """A residual MLP block: exports on its own."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.down(torch.nn.functional.gelu(self.up(self.norm(x))))


class Refiner(nn.Module):
    """Shrinks its state in a `while` on tensor values, asks NumPy for a statistic, and returns a dict whose keys
    depend on the data: none of that exports, but the embedding, the MLP blocks and the head do."""

    def __init__(self, dim: int = 128, hidden: int = 512, depth: int = 4):
        super().__init__()
        self.embed = nn.Linear(32, dim)
        self.blocks = nn.ModuleList(MLPBlock(dim, hidden) for _ in range(depth))
        self.head = nn.Linear(dim, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1  # a Python side effect
        h = self.embed(x)
        steps = 0
        while h.abs().mean() > 0.25 and steps < 8:  # a loop on tensor values
            h = h * 0.7
            steps += 1
        for block in self.blocks:
            h = block(h)
        spread = float(np.std(h.detach().cpu().numpy()))  # a call into NumPy
        out = {"logits": self.head(h), "steps": torch.tensor(steps)}
        if spread > 1.0:  # the output's structure depends on the data
            out["spread"] = torch.tensor(spread)
        return out


def refiner():
    torch.manual_seed(0)
    return Refiner().eval()


example_args = (torch.randn(8, 16, 32),)
