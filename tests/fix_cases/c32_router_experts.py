"""A gate picks an expert (ModuleList indexed by constants), then a normalization branch; a Python flag stays a flag."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model

class Router(nn.Module):
    def __init__(self):
        super().__init__()
        self.experts = nn.ModuleList([nn.Linear(6, 6) for _ in range(2)])
        self.gate = nn.Linear(6, 1)
        self.training_only = False
    def forward(self, x):
        g = self.gate(x).mean()
        if self.training_only:
            return x
        if g > 0:
            y = self.experts[0](x)
            z = y.relu()
        else:
            y = self.experts[1](x)
            z = y.sigmoid()
        total = y + z
        if total.std() > 1:
            return total / total.std()
        else:
            return total
model = Router()
example_args = (torch.randn(4, 6),)
probe_args = [(torch.randn(4, 6) * 10,), (-torch.randn(4, 6) * 10,), (torch.randn(4, 6) * 0.01,), (torch.randn(4,6)+3,), (torch.randn(4,6)-3,)]
rewrites = 2
