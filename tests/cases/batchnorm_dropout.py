"""A user-defined model with BatchNorm and Dropout, in eval mode: its outputs change if anything puts it in
training mode (batch statistics, random zeros), so every `bench` mode must leave its mode flags, buffers and
parameters alone. Its class lives in this file, so the name pt2kit imports the file under is saved in the
program (`nn_module_stack`): the build cache must not depend on it."""
import torch
from torch import nn

torch.manual_seed(0)


class NormDropMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(16, 32)
        self.norm = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.5)
        self.down = nn.Linear(32, 4)
        with torch.no_grad():  # running statistics far from a batch's, so batch statistics would show
            self.norm.running_mean.uniform_(-1, 1)
            self.norm.running_var.uniform_(0.5, 2)

    def forward(self, x):
        return self.down(self.drop(torch.relu(self.norm(self.up(x)))))


model = NormDropMLP().eval()
example_args = (torch.randn(4, 16),)
tags = {"bench", "cache", "batchnorm", "dropout"}
