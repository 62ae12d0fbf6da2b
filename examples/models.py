"""Example models for the demo and the docs (random weights, nothing downloaded)."""
import torch
from torch import nn

torch.manual_seed(0)


class SmallCNN(nn.Module):
    """A small image classifier: conv blocks, global pooling, a linear head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(32, classes)

    def forward(self, images):
        return self.head(self.features(images).flatten(1))


class GatedMLP(nn.Module):
    """An MLP whose output depends on a data-dependent branch (needs `--fix` to export)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        h = self.fc(x)
        if h.mean() > 0:
            return h.relu()
        return -h


cnn = SmallCNN().eval()
example_args = (torch.randn(4, 3, 32, 32),)

gated = GatedMLP().eval()
