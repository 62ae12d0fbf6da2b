"""Different block classes in one ModuleList, each with its own branch, one calling a submodule that branches too."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model

class Norm(nn.Module):
    def forward(self, x):
        s = x.std()
        if s > 1:
            x = x / s
        return x
class A(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(4, 4); self.norm = Norm()
    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:
            h = self.norm(h)
        return h
class B(nn.Module):
    def __init__(self):
        super().__init__(); self.fc = nn.Linear(4, 4)
    def forward(self, x):
        h = self.fc(x)
        return h.relu() if h.max() > 1 else h
class Net(nn.Module):
    def __init__(self):
        super().__init__(); self.blocks = nn.ModuleList([A(), B(), A()])
    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x
model = Net()
example_args = (torch.randn(3, 4),)
probe_args = [(torch.randn(3, 4) * 10,), (torch.randn(3, 4) * 0.1,), (-torch.randn(3, 4) * 10,), (torch.randn(3,4)+2,)]
rewrites = 3
