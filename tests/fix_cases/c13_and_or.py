"""and/or/not of tensor conditions become &, |, ~."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Window(nn.Module):
    def forward(self, x):
        if x.min() > -1 and not x.max() > 1:
            x = x * 10
        elif x.min() < -5 or x.max() > 5:
            x = x.clamp(-5, 5)
        return x


model = Window()
example_args = (torch.randn(4),)
probe_args = [(torch.rand(4) * 0.5,), (torch.tensor([-9.0, 0.0, 1.0, 2.0]),), (torch.tensor([-2.0, 0.0, 1.0, 2.0]),)]
rewrites = 2
