"""Nested ifs where every side returns."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Quadrant(nn.Module):
    def forward(self, x, y):
        if x.sum() > 0:
            if y.sum() > 0:
                return x + y
            return x - y
        if y.sum() > 0:
            return y - x
        return -x - y


model = Quadrant()
example_args = (torch.randn(3), torch.randn(3))
probe_args = [(torch.ones(3), torch.ones(3)), (torch.ones(3), -torch.ones(3)),
              (-torch.ones(3), torch.ones(3)), (-torch.ones(3), -torch.ones(3))]
rewrites = 3
