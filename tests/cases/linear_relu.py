"""A small MLP with a dynamic-friendly batch dim: the plain, happy path."""
import torch
from torch import nn

torch.manual_seed(0)

model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
example_args = (torch.randn(8, 16),)
tags = {"happy-path"}
