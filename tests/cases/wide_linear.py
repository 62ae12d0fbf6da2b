"""Two 4096x4096 linear layers: 134 MB of fp32 weights, few ops (a cheap build), for the external-weights path."""
import torch
from torch import nn

torch.manual_seed(0)

model = nn.Sequential(nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 4096)).eval()
example_args = (torch.randn(2, 4096),)
tags = {"large-weights"}
