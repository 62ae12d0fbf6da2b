"""A tuple output that mixes an alias made where the text cannot show it (a submodule that returns its input)
with a computed tensor: torch reports the alias, and the branch outputs are cloned where they may alias."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.keep = nn.Identity()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        if x.norm() > 2:
            h = self.keep(x)
            s = self.proj(x)
        else:
            h = x * 0.5
            s = self.proj(h)
        return h, s


model = Mixed().eval()
example_args = (torch.randn(3, 4),)
probe_args = [(torch.ones(3, 4) * 3,), (torch.ones(3, 4) * 0.1,)]
rewrites = 2
