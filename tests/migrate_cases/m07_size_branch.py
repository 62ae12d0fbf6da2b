"""A branch on the batch size: the converter decides it at the example's batch, so the batch becomes static."""
from torch import nn


class SizeBranch(nn.Module):
    def forward(self, x):
        if x.size(0) > 4:
            return x.mean(0)
        else:
            return x.sum(0)


model = SizeBranch()
how = "script"
inputs = ["x=float32[6,3]"]
dynamic = "x:0=batch[1,16]"
expect = "ts2ep"
