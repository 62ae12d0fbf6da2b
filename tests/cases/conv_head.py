"""A small CNN with a linear head: every tune candidate kind applies (bf16, channels_last, int8 on the head)."""
import torch
from torch import nn

torch.manual_seed(0)


class ConvHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, images):
        features = self.conv(images).relu().mean((2, 3))
        return self.fc2(self.fc1(features).relu())


model = ConvHead().eval()
example_args = (torch.randn(4, 3, 8, 8),)
dynamic = "images:0=batch[1,16]"
tags = {"happy-path", "tune"}
