"""A branch mixing a Python check (`mask is not None`) with a tensor check (`mask.any()`): only the
tensor part needs torch.cond; the None check stays a Python `if`."""
import torch
from torch import nn


class OptionalMask(nn.Module):
    def forward(self, x, *, mask=None):
        if mask is not None and mask.any():  # blocker: data_dependent_branch
            x = x * mask
        return x + 1


model = OptionalMask()
example_args = (torch.randn(4, 3),)
example_kwargs = {"mask": torch.ones(4, 3)}
