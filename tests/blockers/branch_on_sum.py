"""A Python `if` on a tensor's value, both sides returning (ExportDB's `cond_branch_class_method` without cond)."""
import torch
from torch import nn


class BranchOnSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x):
        y = self.linear(x)
        if y.sum() > 0:  # blocker: data_dependent_branch
            return y.relu()
        else:
            return y.sin()


model = BranchOnSum()
example_args = (torch.randn(3, 4),)
