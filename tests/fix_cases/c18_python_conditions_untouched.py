"""Conditions on Python values (a flag, self.training, a static size) are not rewritten."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Configured(nn.Module):
    def __init__(self, residual=True):
        super().__init__()
        self.residual = residual
        self.fc = nn.Linear(4, 4)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        h = self.fc(x)
        if self.training:
            h = self.drop(h)
        if x.shape[-1] == 4 and self.residual:
            h = h + x
        return h


model = Configured().eval()
example_args = (torch.randn(2, 4),)
probe_args = [(torch.randn(2, 4),)]
rewrites = 0
