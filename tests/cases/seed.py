"""The seed notebook's models, verbatim (one module per notebook cell)."""
import torch
from torch import nn


class UntraceableModule(nn.Module):
    def forward(self, x):
        if x.item() > 0:
            return x * 2
        else:
            return x


untraceable = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), UntraceableModule())


class ConditionalModel(nn.Module):
    def forward(self, x):
        if x.shape[0] > 5:
            return x + 1
        else:
            return x - 1


class InPlaceOperationModel(nn.Module):
    def forward(self, x):
        x += 1
        return x


class DynamicShapeModel(nn.Module):
    def forward(self, x):
        return x + torch.ones_like(x)


class SimpleModel(nn.Module):
    def forward(self, x):
        return x + 10


def make_simple():
    return SimpleModel()


not_a_module = 42

example_args = (torch.randn(10, 10),)
