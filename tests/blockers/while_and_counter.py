"""A `while` on a tensor value AND a Python counter (the loop of examples/partial_refiner.py): the `while_loop`
fix must carry the counter as a tensor and join the two conditions with `torch.logical_and`, not `and`."""
import torch
from torch import nn


class ShrinkUntilSmall(nn.Module):
    def forward(self, h):
        steps = 0
        while h.abs().mean() > 0.25 and steps < 8:  # blocker: data_dependent_branch
            h = h * 0.7
            steps += 1
        return h * steps


model = ShrinkUntilSmall()
example_args = (torch.full((2, 3), 2.0),)
