"""Reading a tensor's raw memory address: neither tracer can see real data."""
import torch
from torch import nn


class AlignmentAware(nn.Module):
    def forward(self, x):
        offset = x.data_ptr() % 64  # blocker: unsupported_python
        return x + offset


model = AlignmentAware()
example_args = (torch.randn(4),)
