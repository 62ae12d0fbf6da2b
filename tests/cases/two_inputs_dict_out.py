"""Two inputs, one keyword, and a nested dict/tuple output: names and leaves in the manifest."""
import torch
from torch import nn

torch.manual_seed(0)


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 6)

    def forward(self, x, mask, *, scale: float = 2.0):
        h = self.proj(x) * mask.unsqueeze(-1)
        return {"hidden": h * scale, "pair": (h.sum(-1), mask.sum(-1))}


model = TwoInputs().eval()
example_args = (torch.randn(2, 5, 6), torch.ones(2, 5))
example_kwargs = {"scale": 2.0}
tags = {"pytree", "kwargs"}
