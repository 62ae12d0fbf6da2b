"""A block with an `if` on tensor values (`--fix` rewrites it into torch.cond), under a top level with a NumPy call."""

import numpy as np
import torch
from torch import nn


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        y = self.fc(x)
        if y.sum() > 0:
            return torch.relu(y)
        return -y


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = Gate()

    def forward(self, x):
        scale = float(np.abs(x.numpy()).max())  # NumPy: the top level does not export
        return self.gate(x / scale)


def model():
    torch.manual_seed(0)
    return Model().eval()


example_args = (torch.randn(4, 16),)
