"""A loop whose trip count depends on a tensor's value."""
import torch
from torch import nn


class HalveUntilSmall(nn.Module):
    def forward(self, x):
        while x.abs().sum() > 1:  # blocker: data_dependent_branch
            x = x / 2
        return x


model = HalveUntilSmall()
example_args = (torch.full((3,), 4.0),)
