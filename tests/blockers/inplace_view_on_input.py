"""An in-place view (metadata) change of an input: export cannot record it."""
import torch
from torch import nn


class AddBatchDim(nn.Module):
    def forward(self, x):
        x.unsqueeze_(0)  # blocker: input_mutation_or_aliasing
        return x * 2


model = AddBatchDim()
example_args = (torch.randn(3, 4),)
