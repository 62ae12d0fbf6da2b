"""A `torch.library.custom_op` without a fake kernel: export cannot know its output's shape."""
import torch
from torch import nn


@torch.library.custom_op("pt2kit_blockers::scaled_gelu", mutates_args=())
def scaled_gelu(x: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.nn.functional.gelu(x) * scale


class UsesCustomOp(nn.Module):
    def forward(self, x):
        y = x + 1
        return scaled_gelu(y, 0.5)  # blocker: unsupported_operator


model = UsesCustomOp()
example_args = (torch.randn(2, 8),)
