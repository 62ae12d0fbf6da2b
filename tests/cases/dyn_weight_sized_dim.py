"""A dim that the model's weights fix: `x.shape[1]` must be 16, the Linear's in-features.

Declared dynamic (`x:1=feat`), export fails with "specialized it to be a constant (16)";
repair makes it static, because that is the model's structure, not a choice in user code.
"""
import torch
from torch import nn

torch.manual_seed(0)


class Projection(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 4)

    def forward(self, x):
        return torch.relu(self.proj(x))


model = Projection().eval()
example_args = (torch.randn(8, 16),)
tags = {"dynamic-shape", "repair", "specialize"}
