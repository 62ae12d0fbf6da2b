"""The silent one with an equality: `dynamic = "auto"` lets torch choose, and the branch on
`x.shape[1] == 3` makes it keep that dim static, so the other side is gone from the program."""
import torch
from torch import nn


class ChannelsCheck(nn.Module):
    def forward(self, x):
        if x.shape[1] == 3:  # blocker: shape_specialized
            return x.sum(1)
        return x.mean(1)


model = ChannelsCheck()
example_args = (torch.randn(4, 3),)
dynamic = "auto"
