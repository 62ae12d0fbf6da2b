"""A NumPy array computed from an input and turned back into a tensor: the custom-op fix returns a copy (a custom
op's output may not share memory with its input) of the array's own dtype, shaped like the input."""
import numpy as np
import torch
from torch import nn


class SortWithNumpy(nn.Module):
    def forward(self, x):
        h = x + 1
        ranked = torch.from_numpy(np.sort(h.numpy(), axis=-1))  # blocker: unsupported_python
        return ranked * 2


model = SortWithNumpy()
example_args = (torch.randn(3, 5),)
mode = "non-strict"  # strict export traces NumPy through Dynamo; non-strict runs it, on fake tensors
