"""Two variables; the else side assigns only one of them, the other keeps its value from before."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Partial(nn.Module):
    def forward(self, x, y):
        if (x * y).sum() > 0:
            x = x + y
            y = y * 3
        else:
            x = x - y
        return x, y


model = Partial()
example_args = (torch.randn(4), torch.randn(4))
probe_args = [(torch.ones(4), torch.ones(4)), (torch.ones(4), -torch.ones(4))]
rewrites = 1
