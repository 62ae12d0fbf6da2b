"""An operator defined with `torch.library.Library` and only a CPU kernel (no Meta kernel)."""
import torch
from torch import nn

_lib = torch.library.Library("pt2kit_blockers_lib", "DEF")
_lib.define("twice(Tensor x) -> Tensor")
_lib.impl("twice", lambda x: x * 2, "CPU")


class UsesLibraryOp(nn.Module):
    def forward(self, x):
        y = x.relu()
        return torch.ops.pt2kit_blockers_lib.twice(y)  # blocker: unsupported_operator


model = UsesLibraryOp()
example_args = (torch.randn(3, 3),)
