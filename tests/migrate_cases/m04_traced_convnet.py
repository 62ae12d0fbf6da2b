"""A traced convnet: its archive records the inputs it was traced with, so no --input is needed."""
import torch
from torch import nn

torch.manual_seed(0)


class TinyConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 10)

    def forward(self, images):
        h = torch.relu(self.bn(self.conv(images)))
        return self.head(h.mean((2, 3)))


model = TinyConvNet()
how = "trace"
example_args = (torch.randn(2, 3, 16, 16),)
inputs = []
expect = "ts2ep"
