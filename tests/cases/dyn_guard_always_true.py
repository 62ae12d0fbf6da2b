"""A size branch no torch can decide symbolically, though it goes one way for every size: n*n % 4 is never 2.

torch reports "Not all values of s ... satisfy the generated guard ((s*s) % 4) != 2" and suggests no fix.
Repair evaluates the guard at every size of the declared range and, as it always holds, keeps it as a
run-time assertion (`runtime-check`).
"""
import torch


class SquareModFour(torch.nn.Module):
    def forward(self, x):
        n = x.shape[1]
        if (n * n) % 4 != 2:
            return x * 2
        return x * 3


model = SquareModFour()
example_args = (torch.ones(2, 8),)
tags = {"dynamic-shape", "repair"}
