"""The branch is in a helper method forward calls."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class WithHelper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def squash(self, h):
        if h.abs().max() > 1:
            return h / h.abs().max()
        return h

    def forward(self, x):
        return self.squash(self.fc(x))


model = WithHelper()
example_args = (torch.randn(2, 3),)
probe_args = [(torch.randn(2, 3) * 100,), (torch.randn(2, 3) * 0.001,)]
rewrites = 1
