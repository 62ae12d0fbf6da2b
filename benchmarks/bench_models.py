"""Models and the Markdown record shared by bench_cpu.py and bench_gpu.py.

Every model is built from code or a `transformers` config with random weights (nothing is
downloaded), and returned as a `pt2kit.Target` with its example inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from pt2kit.target.resolve import Target


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head on 3x32x32 images."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(128, 10)

    def forward(self, images):
        return self.head(self.features(images).flatten(1))


class HiddenStates(nn.Module):
    """A transformers encoder called with token ids, returning its last hidden state (a plain tensor)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids).last_hidden_state


class DecoderLogits(nn.Module):
    """A transformers decoder called with token ids, returning its logits without the KV cache."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


class Logits(nn.Module):
    """A transformers classifier called with pixels, returning its logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def cnn(batch: int = 8) -> Target:
    torch.manual_seed(0)
    return Target("benchmarks/bench_models.py:cnn", SmallCNN().eval(), (torch.randn(batch, 3, 32, 32),))


def mlp(batch: int = 32) -> Target:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 10)).eval()
    return Target("benchmarks/bench_models.py:mlp", model, (torch.randn(batch, 256),))


def small_bert(batch: int = 8, tokens: int = 64) -> Target:
    """BERT with 2 layers of width 128 (transformers BertConfig), random weights."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)
    ids = torch.randint(0, 1000, (batch, tokens))
    return Target("benchmarks/bench_models.py:small_bert", HiddenStates(BertModel(config)).eval(), (ids,))


def bert_base(batch: int = 16, tokens: int = 128) -> Target:
    """BERT-base: transformers BertConfig defaults (12 layers, width 768), random weights."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    ids = torch.randint(0, 30522, (batch, tokens))
    return Target("benchmarks/bench_models.py:bert_base", HiddenStates(BertModel(BertConfig())).eval(), (ids,))


def resnet50(batch: int = 32) -> Target:
    """ResNet-50 without torchvision: transformers ResNetConfig with the ResNet-50 layout, random weights."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(depths=[3, 4, 6, 3], layer_type="bottleneck", hidden_sizes=[256, 512, 1024, 2048],
                          embedding_size=64, num_labels=1000)
    model = Logits(ResNetForImageClassification(config)).eval()
    return Target("benchmarks/bench_models.py:resnet50", model, (torch.randn(batch, 3, 224, 224),))


def markdown_table(report) -> str:
    """One Markdown table of a BenchReport's rows, then its overhead, notes and machine."""
    lines = ["| mode | batch | build s | cold start s | p50 ms | p90 ms | p99 ms | items/s | peak mem MiB | artifact MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(report.rows, key=lambda r: (r.batch_size, [m.value for m in type(r.mode)].index(r.mode.value))):
        lines.append(
            f"| {r.mode.value} | {r.batch_size} | {_num(r.build_s, '.2f')} | {_num(r.cold_start_s, '.3f')} | {r.p50_ms:.3f} | "
            f"{r.p90_ms:.3f} | {r.p99_ms:.3f} | {r.throughput:,.0f} | {_mib(r.peak_mem_bytes)} | {_mib(r.artifact_bytes)} |"
        )
    lines.append("")
    lines.append(f"Harness overhead (an empty call through the same timing loop): {report.overhead_ms * 1000:.1f} us. "
                 f"{report.iters} timed calls per mode and batch size after {report.warmup} warm-up, interleaved.")
    for o in report.outcomes:
        if o.status.value != "ok":
            lines.append(f"- {o.mode.value} {o.status.value}: {o.reason}")
    lines += [f"- {n}" for n in report.notes]
    lines.append(f"- machine: {report.machine}")
    return "\n".join(lines)


def _num(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _mib(n) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"
