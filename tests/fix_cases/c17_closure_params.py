"""Branches that use submodules, parameters and buffers of the module (closed over)."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.alpha = nn.Parameter(torch.tensor(0.3))
        self.register_buffer("bias", torch.arange(4.0))

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > x.sum():
            out = h * self.alpha + self.bias
        else:
            out = x - self.bias
        return out


model = Residual()
example_args = (torch.randn(3, 4),)
probe_args = [(torch.randn(3, 4) * 10,), (torch.randn(3, 4) * 0.01 - 5,), (torch.randn(3, 4) * 0.01 + 5,)]
rewrites = 1
