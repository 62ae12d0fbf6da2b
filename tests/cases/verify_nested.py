"""Nested outputs: a dict holding a tensor, a tuple and a list; verify compares every leaf by its manifest name."""
import torch
from torch import nn

torch.manual_seed(0)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.tanh(self.proj(x))
        return {"logits": self.head(h), "aux": (h.mean(-1), [h.amax(-1), (h > 0).sum(-1)])}


model = Nested().eval()
example_args = (torch.randn(4, 8),)
dynamic = "x:0=batch[1,32]"
