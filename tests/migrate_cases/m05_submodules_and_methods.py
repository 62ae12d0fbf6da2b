"""Submodules, attributes and a second scripted method: forward migrates; what cannot is listed."""
from typing import List

import torch
from torch import nn

torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return torch.relu(self.fc(x))


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.scale = 0.5
        self.labels: List[str] = ["cat", "dog", "bird", "fish", "frog", "newt"]
        self.register_buffer("bias", torch.arange(6.0))

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x * self.scale + self.bias

    @torch.jit.export
    def predict(self, x):
        return self.forward(x).argmax(-1)


model = Classifier()
how = "script"
inputs = ["x=float32[2,6]"]
dynamic = "x:0=batch[1,16]"
expect = "ts2ep"
