"""The branch is in a free function of the model's file that forward calls."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


def soft_clip(x, limit):
    if x.abs().max() > limit:
        return x * (limit / x.abs().max())
    return x


class UsesHelper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return soft_clip(self.fc(x), 3.0)


model = UsesHelper()
example_args = (torch.randn(2, 4),)
probe_args = [(torch.randn(2, 4) * 100,), (torch.randn(2, 4) * 0.01,)]
rewrites = 1
