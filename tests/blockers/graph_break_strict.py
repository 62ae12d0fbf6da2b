"""An explicit graph break: fine for torch.compile, fatal for strict export."""
import torch
from torch import nn


class ExplicitBreak(nn.Module):
    def forward(self, x):
        y = x * 2
        torch._dynamo.graph_break()  # blocker: unsupported_python
        return y + 1


model = ExplicitBreak()
example_args = (torch.randn(4),)
mode = "strict"
