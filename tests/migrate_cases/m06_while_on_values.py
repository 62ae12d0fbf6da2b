"""A while loop that stops on tensor values: no strategy can capture it; pt2kit reports where and why."""
from torch import nn


class Halve(nn.Module):
    def forward(self, x):
        steps = 0
        while bool(x.abs().max() > 1.0):
            x = x * 0.5
            steps += 1
        return x, steps


model = Halve()
how = "script"
inputs = ["x=float32[4]@-8..8"]
expect = None
