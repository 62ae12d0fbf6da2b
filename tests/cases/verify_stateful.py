"""Python state export bakes in: eager scales by a call counter, the program by the count seen at trace time."""
import torch
from torch import nn


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x * self.calls


model = Counter().eval()
example_args = (torch.randn(3, 4),)
