"""Write TorchScript archives to try `pt2kit migrate` on: `python examples/torchscript_models.py out/`.

- `branch.pt`: a scripted `if` on a tensor's sum (becomes torch.cond).
- `loop_branch.pt`: a loop over a size, then a branch on values (the loop count is fixed at the example's size).
- `halve.pt`: a `while` on tensor values (cannot be converted: pt2kit says where and why).
- `convnet.pt`: a traced convnet (the archive records its input shape).
"""

import sys
import warnings
from pathlib import Path

import torch
from torch import nn


class Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        if x.sum() > 0:
            return self.proj(x) * 2
        else:
            return self.proj(x) - 1


class LoopBranch(nn.Module):
    def forward(self, x):
        y = x
        for _ in range(x.size(1)):
            y = torch.tanh(y) + 0.1
        if y.mean() > 0.5:
            y = y * 2
        return y


class Halve(nn.Module):
    def forward(self, x):
        while bool(x.abs().max() > 1.0):
            x = x * 0.5
        return x


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, images):
        return self.head(torch.relu(self.conv(images)).mean((2, 3)))


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated: that is why these are being migrated
        for name, model in [("branch", Branch()), ("loop_branch", LoopBranch()), ("halve", Halve())]:
            torch.jit.save(torch.jit.script(model.eval()), str(folder / f"{name}.pt"))
        torch.jit.save(torch.jit.trace(ConvNet().eval(), (torch.randn(2, 3, 16, 16),)), str(folder / "convnet.pt"))
    print(f"wrote branch.pt, loop_branch.pt, halve.pt, convnet.pt to {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out"))
