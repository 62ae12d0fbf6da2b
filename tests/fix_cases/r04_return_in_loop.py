"""Refused: a return inside a loop."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class EarlyExit(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
            if x.norm() > 10:
                return x
        return x * 0


model = EarlyExit()
example_args = (torch.randn(2, 4),)
probe_args = [(torch.randn(2, 4) * 100,), (torch.randn(2, 4) * 0.01,)]
refusal = "return-in-loop"
