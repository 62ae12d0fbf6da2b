"""Two data-dependent ifs in one function, rewritten one after the other."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class TwoSteps(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            x = x - x.mean()
        y = x.abs()
        if y.max() > 1:
            y = y / y.max()
        return x * y


model = TwoSteps()
example_args = (torch.randn(5),)
probe_args = [(torch.randn(5) + 3,), (torch.rand(5) * 0.1 - 1,), (torch.tensor([0.1, -0.2, 0.3, 0.0, 0.1]),)]
rewrites = 2
