"""Named Inductor settings for `pt2kit compile --preset NAME`.

Each preset is a plain dict of documented `torch._inductor.config` keys, passed as
`inductor_configs` to `torch._inductor.aoti_compile_and_package`. docs/compile.md lists
them verbatim; `test_compile.py` checks that the doc and this table agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from pt2kit.errors import UsageError


@dataclass(frozen=True)
class Preset:
    """A named set of Inductor settings and the devices it is meant for."""

    name: str
    summary: str
    inductor_configs: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu", "cuda")

    def __str__(self) -> str:
        return f"{self.name}: {self.summary} {dict(self.inductor_configs)}"

    def to_json(self) -> dict:
        return {"name": self.name, "summary": self.summary, "inductor_configs": dict(self.inductor_configs), "devices": list(self.devices)}


PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (
    Preset("default", "Inductor's defaults: the fastest build", {}),
    Preset(
        "max-autotune",
        "benchmark GEMM/conv templates at build time and keep the fastest (much slower build)",
        {"max_autotune": True, "coordinate_descent_tuning": True},
    ),
    Preset(
        "cpu-freeze",
        "CPU inference: fold weights into the graph as constants and pre-pack them for oneDNN/MKL",
        {"freezing": True, "cpp.weight_prepack": True},
        devices=("cpu",),
    ),
)})


def get_preset(name: str, device: str) -> Preset:
    """The preset called `name`, checked against `device`.

    Raises:
        UsageError: unknown name, or a preset meant for another device.
    """
    preset = PRESETS.get(name)
    if preset is None:
        raise UsageError(f"unknown preset `{name}`; choose one of: {', '.join(PRESETS)} (e.g. `--preset default`)")
    if device not in preset.devices:
        raise UsageError(f"preset `{name}` is for {'/'.join(preset.devices)}, not `{device}`; use `--preset default` or `--preset max-autotune`")
    return preset
