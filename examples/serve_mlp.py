"""A small MLP to serve (docs/serve.md): 16 features in, 4 scores out, any batch."""
import torch
from torch import nn

torch.manual_seed(0)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)


model = MLP().eval()
example_args = (torch.randn(4, 16),)
