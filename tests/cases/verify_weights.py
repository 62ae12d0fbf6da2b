"""One architecture, two sets of weights: an artifact of `retrained` must fail verification against `model`."""
import torch
from torch import nn


class TwoHeads(nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Linear(16, 16)
        self.score = nn.Linear(16, 1)
        self.label = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return {"score": self.score(h), "label": self.label(h)}


model = TwoHeads(seed=0).eval()
retrained = TwoHeads(seed=1).eval()
retrained.label.load_state_dict(model.label.state_dict())  # body differs, so every head differs
example_args = (torch.randn(4, 16),)
