"""ResNet-50's interface (bf16 1x3x224x224 in, 1x1000 out) with almost no compute: the server's own cost per request."""
import torch
from torch import nn


class Imagey(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1000)

    def forward(self, pixel_values):
        return self.fc(pixel_values.float().mean(dim=(2, 3))).to(torch.bfloat16)


model = Imagey().eval()
example_args = (torch.zeros(2, 3, 224, 224, dtype=torch.bfloat16),)
