"""A conv net with BatchNorm and Dropout, in eval mode: its outputs change if anything puts it in training mode
(batch statistics, random zeros), so every `bench` mode must leave its mode flags, buffers and parameters alone."""
import torch
from torch import nn

torch.manual_seed(0)

model = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(8), nn.Linear(8, 4),
)
with torch.no_grad():  # running statistics far from a batch's, so batch statistics would show
    for bn in (model[1], model[6]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
model.eval()
example_args = (torch.randn(4, 3, 8, 8),)
tags = {"bench", "batchnorm", "dropout"}
