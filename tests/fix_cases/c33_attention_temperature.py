"""Attention with an optional mask (Python check), an .item() temperature in an elif chain, and a conditional expression."""
import torch
from torch import nn

torch.manual_seed(0)  # weights must be the same in every process that builds this model

class Attn(nn.Module):
    """gated residual with a data-dependent temperature"""
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8); self.k = nn.Linear(8, 8)
        self.register_buffer("temp", torch.tensor(1.0))
    def forward(self, x, mask=None):
        q, k = self.q(x), self.k(x)
        scores = q @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores.masked_fill(~mask, -1e4)
        t = scores.abs().amax().item()
        if t > 10.0:
            scores = scores / t * 10.0
        elif t < 0.1:
            scores = scores * 10
        w = scores.softmax(-1)
        out = w @ x
        return out if out.isfinite().all() else torch.zeros_like(out)
model = Attn()
example_args = (torch.randn(2, 5, 8),)
probe_args = [(torch.randn(2, 5, 8) * 10,), (torch.randn(2, 5, 8) * 0.01,), (torch.randn(2, 5, 8),)]
rewrites = 3
