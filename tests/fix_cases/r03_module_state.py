"""Refused: a branch assigns module state (self.x = ...)."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Tracker(nn.Module):
    def __init__(self):
        super().__init__()
        self.last_peak = torch.zeros(())

    def forward(self, x):
        if x.max() > self.last_peak:
            self.last_peak = x.max()
            x = x / self.last_peak
        return x


model = Tracker()
example_args = (torch.randn(4),)
probe_args = [(torch.rand(4) + 1,), (-torch.rand(4) - 1,)]
refusal = "side-effect"
