"""Inputs given by keyword (`example_kwargs`, as every transformers model is called): the program keeps them keyword."""
import torch
from torch import nn

torch.manual_seed(0)


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 3)

    def forward(self, x, mask=None, scale: float = 1.0):
        return {"y": self.proj(x) * mask.unsqueeze(-1) * scale, "count": mask.sum(-1)}


model = Gated().eval()
example_kwargs = {"mask": torch.ones(2, 5), "x": torch.randn(2, 5, 6)}  # not in forward's order: pt2kit orders them
dynamic = "x:0=batch[1,8],mask:0=batch"
tags = {"kwargs"}
