"""A NumPy statistic turned into a Python float (as in examples/partial_refiner.py): the custom-op fix must
return a tensor (the op declares `-> torch.Tensor`), not the float."""
import numpy as np
import torch
from torch import nn


class NormalizeBySpread(nn.Module):
    def forward(self, x):
        h = x * 2
        spread = float(np.std(h.detach().cpu().numpy()))  # blocker: unsupported_python
        return h / (spread + 1e-6)


model = NormalizeBySpread()
example_args = (torch.randn(4, 8),)
mode = "non-strict"  # strict export traces NumPy through Dynamo; non-strict runs it, on fake tensors
