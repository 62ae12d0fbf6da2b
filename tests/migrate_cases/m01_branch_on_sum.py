"""A scripted if/else on a tensor reduction: torch's converter makes it torch.cond; both sides are verified."""
import torch
from torch import nn

torch.manual_seed(0)


class BranchOnSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:
            return self.proj(x) * 2
        else:
            return self.proj(x) - 1


model = BranchOnSum()
how = "script"
inputs = ["x=float32[4,8]"]
dynamic = "x:0=batch[1,32]"
expect = "ts2ep"
