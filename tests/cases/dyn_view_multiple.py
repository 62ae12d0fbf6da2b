"""A reshape that needs the column count to be a multiple of 8, traced at exactly 8 columns.

At 8 the inferred `-1` is 1, so torch pins the dim to 8 ("Suggested fixes: seq = 8"): an artifact of
the example's size, not of the model, which works for any multiple of 8. Repair re-traces at 16,
where torch suggests the real relation `seq = 8*_seq`.
"""
import torch


class ViewMultiple(torch.nn.Module):
    def forward(self, x):
        return x.view(x.shape[0], -1, 8).sum(-1)


model = ViewMultiple()
example_args = (torch.randn(2, 8),)
tags = {"dynamic-shape", "repair"}
