"""Two blockers before an output of a class export cannot flatten. draft_export stops at the output;
pt2kit reports it, registers the class for one more draft run, and still finds the other two."""
import torch
from torch import nn


class Chunk:
    def __init__(self, values):
        self.values = values


class ChunkFirst(nn.Module):
    def forward(self, x, n):
        if x.sum() > 0:  # blocker: data_dependent_branch
            x = x * 2
        k = n.item()
        chunks = x.split(k)  # blocker: data_dependent_value
        return Chunk(chunks[0])  # blocker: non_pytree_type


model = ChunkFirst()
example_args = (torch.ones(6), torch.tensor(3))
