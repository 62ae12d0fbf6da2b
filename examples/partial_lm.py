"""A small transformer stack whose depth is decided in Python from tensor values (a case of `pt2kit compile --partial`).

    pt2kit compile examples/partial_lm.py:early_exit_lm --partial -o out/lm.regions.pt2
    pt2kit verify examples/partial_lm.py:early_exit_lm out/lm.regions.pt2
"""

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class EarlyExitLM(nn.Module):
    """A small transformer stack that stops adding layers once the hidden state settles (a data-dependent number
    of layers, decided in Python) and logs each exit in a Python list."""

    def __init__(self, vocab: int = 512, dim: int = 128, heads: int = 4, depth: int = 6, tolerance: float = 1e-3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(TransformerBlock(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.tolerance = tolerance
        self.exits: list[int] = []

    def forward(self, ids):
        h = self.embed(ids)
        used = 0
        for layer in self.layers:
            new = layer(h)
            used += 1
            if (new - h).abs().max() < self.tolerance:  # data-dependent depth
                h = new
                break
            h = new
        self.exits.append(used)
        return self.lm_head(self.norm(h))


def early_exit_lm():
    torch.manual_seed(0)
    return EarlyExitLM().eval()


example_args = (torch.randint(0, 512, (4, 64)),)
