"""Code that raises its own error only while being exported: pt2kit cannot classify it, so the
report keeps torch's (here the model's) message unchanged."""
import torch
from torch import nn


class RefusesExport(nn.Module):
    def forward(self, x):
        if torch.compiler.is_exporting():
            raise ValueError("this model must not be exported: it reads a device-side cache")  # blocker: unclassified
        return x + 1


model = RefusesExport()
example_args = (torch.randn(2),)
