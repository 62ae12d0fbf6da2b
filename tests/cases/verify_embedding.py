"""Token ids: an embedding with exactly 50 rows, so an id outside [0, 50) makes the eager model raise."""
import torch
from torch import nn

torch.manual_seed(0)


class Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, ids):
        return self.out(self.embed(ids)).mean(1)


model = Embed().eval()
example_args = (torch.randint(0, 5, (2, 6)),)  # the example uses only ids below 5
