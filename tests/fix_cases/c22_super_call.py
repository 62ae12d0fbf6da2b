"""A subclass whose forward calls super().forward() and branches on the result."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model


class Base(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x)


class Child(Base):
    def forward(self, x):
        h = super().forward(x)
        if h.sum() > 0:
            h = h * 2
        return h


model = Child()
example_args = (torch.randn(2, 3),)
probe_args = [(torch.randn(2, 3) * 10,), (-torch.randn(2, 3) * 10,), (torch.zeros(2, 3),)]
rewrites = 1
