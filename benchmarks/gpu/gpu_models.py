"""Random-weight models for the GPU command-line checks (benchmarks/gpu/gpu_load.sh), built the same way every time.

    pt2kit export benchmarks/gpu/gpu_models.py:resnet50 -o r50.pt2 --dynamic pixel_values:0=batch[1,32]

The seed is set inside the factory, so `pt2kit verify benchmarks/gpu/gpu_models.py:resnet50 r50.aoti.pt2`
compares the package with the very weights it was exported from.
"""

import torch
from torch import nn


class Logits(nn.Module):
    """transformers' `ResNetForImageClassification` (ResNet-50 layout), returning only the logits."""

    def __init__(self):
        super().__init__()
        from transformers import ResNetConfig, ResNetForImageClassification

        self.m = ResNetForImageClassification(ResNetConfig())

    def forward(self, pixel_values):
        return self.m(pixel_values).logits


def resnet50() -> nn.Module:
    torch.manual_seed(0)
    return Logits().eval()


example_args = (torch.randn(8, 3, 224, 224),)
