"""Three different blockers in one forward: a branch on a tensor's value, an `.item()` used as a
split size, and a custom operator registered without a fake kernel. Plain export stops at the first."""
import torch
from torch import nn


@torch.library.custom_op("pt2kit_blockers::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.sin()


class ThreeBlockers(nn.Module):
    def forward(self, x, n):
        if x.sum() > 0:  # blocker: data_dependent_branch
            x = x * 2
        k = n.item()
        chunks = x.split(k)  # blocker: data_dependent_value
        y = mystery(chunks[0])  # blocker: unsupported_operator
        return y


model = ThreeBlockers()
example_args = (torch.ones(6), torch.tensor(3))
