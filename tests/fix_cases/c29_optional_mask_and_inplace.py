"""A Python check and a tensor condition in one `and` (short-circuit kept for the Python part), a
predicate helper method, and `+=` on a value passed into the branch (made out of place)."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Masked(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def is_saturated(self, h):
        return h.abs().max() > 3

    def forward(self, x, mask=None):
        h = self.fc(x)
        if mask is not None and mask.sum() > 2:
            h = h * mask
        if self.is_saturated(h):
            h += 1
        else:
            h = h.tanh()
        return h


model = Masked()
example_args = (torch.randn(2, 4), torch.ones(2, 4))
probe_args = [
    (torch.randn(2, 4) * 10, torch.ones(2, 4)),
    (torch.randn(2, 4) * 0.01, torch.zeros(2, 4)),
    (torch.randn(2, 4) * 10, torch.zeros(2, 4)),
    (torch.randn(2, 4) * 0.01, torch.ones(2, 4)),
]
rewrites = 2
