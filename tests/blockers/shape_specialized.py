"""The silent one: the seed notebook's `ConditionalModel`. Export succeeds with static shapes, but the
branch on `x.shape[0]` was decided once and only one side is in the program."""
import torch
from torch import nn


class ConditionalModel(nn.Module):
    def forward(self, x):
        if x.shape[0] > 5:  # blocker: shape_specialized
            return x + 1
        else:
            return x - 1


model = ConditionalModel()
example_args = (torch.randn(10, 2),)
