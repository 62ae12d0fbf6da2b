"""A size branch that really depends on the size: n % 7 == 3 at 3, 10, 17, 24 and 31.

torch suggests no fix for `(s % 7) != 3`. Over [2, 32] repair finds the sizes where it is false, defers
nothing, and export fails naming them; over [4, 9] it holds everywhere and export succeeds.
"""
import torch


class ModSeven(torch.nn.Module):
    def forward(self, x):
        if x.shape[1] % 7 != 3:
            return x * 2
        return x * 3


model = ModSeven()
example_args = (torch.ones(2, 8),)
tags = {"dynamic-shape", "repair"}
