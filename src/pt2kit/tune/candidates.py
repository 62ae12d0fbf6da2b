"""The candidates `pt2kit tune` builds: a recipe of Inductor settings, a dtype, a layout, load options.

A recipe names a compile preset plus settings laid over it. Which recipes apply depends on the device:

| recipe | device | settings over the preset |
| --- | --- | --- |
| `default` | cpu, cuda | Inductor's defaults |
| `cpu-freeze` | cpu | preset `cpu-freeze`: freezing + `cpp.weight_prepack` (weights pre-packed for oneDNN linear/conv) |
| `cpu-gemm` | cpu | `cpu-freeze` + `max_autotune` with the C++ GEMM templates (`max_autotune_gemm_backends="CPP,ATEN"`) |
| `coordinate-descent` | cuda | `coordinate_descent_tuning` (tunes Triton launch configs; it has no C++ kernels to tune on CPU) |
| `max-autotune` | cuda | preset `max-autotune` (GEMM/conv templates benchmarked at build time: slow builds) |

Each recipe is tried in every dtype the device supports from `--dtypes`, in channels_last too for a model with
4-d floating inputs, on CUDA with and without CUDA graph replay (the same package, loaded twice), and on CPU at
each thread count given (`--threads 1,2`: the count is baked into the C++ kernels, `cpp.threads`).

Quantized candidates (`--dtypes int8,fp8,int4` or scheme names, `pt2kit.compile.quantize.SCHEMES`) are opt-in:
`int8` means every int8 scheme the device runs (cpu: `int8-dynamic`, `int8-static`, `int8-weight-only`; cuda:
`int8-dynamic`, `int8-weight-only`),
`fp8` means `fp8-dynamic` (CUDA, compute capability >= 8.9), `int4` means `int4-weight-only` (CUDA). Each is built
with one recipe (cpu: `cpu-freeze` when selected, whose freezing lets Inductor fuse the int8 GEMMs; cuda:
`default`; else the first selected, on CPU `cpu-gemm` last: its C++ GEMM templates crash PT2E int8 builds), in
the plain layout (only linear layers are quantized), on top of fp32 (cpu) or bf16 (cuda), at every thread count
and, on CUDA, with and without graph replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import torch

from pt2kit.compile.quantize import SCHEMES, device_schemes
from pt2kit.errors import UsageError

FLOATS = ("fp32", "bf16", "fp16")
# `--dtypes` words that stand for several schemes
_QUANT_WORDS = {"int8": ("int8-dynamic", "int8-static", "int8-weight-only"), "fp8": ("fp8-dynamic",), "int4": ("int4-weight-only",)}


@dataclass(frozen=True)
class Recipe:
    """A compile preset plus Inductor settings laid over it, for some devices."""

    name: str
    preset: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ("cpu", "cuda")


RECIPES: Mapping[str, Recipe] = MappingProxyType({r.name: r for r in (
    Recipe("default", "default"),
    Recipe("cpu-freeze", "cpu-freeze", devices=("cpu",)),
    Recipe("cpu-gemm", "cpu-freeze", {"max_autotune": True, "max_autotune_gemm_backends": "CPP,ATEN"}, ("cpu",)),
    Recipe("coordinate-descent", "default", {"coordinate_descent_tuning": True}, ("cuda",)),
    Recipe("max-autotune", "max-autotune", devices=("cuda",)),
)})


@dataclass(frozen=True)
class Candidate:
    """One configuration to build, verify and time.

    Attributes:
        name: unique and readable: `cpu-freeze-bf16`, `default-bf16-cl-graphs`, `default-fp32-t1`, `cpu-freeze-int8-dynamic`.
        recipe: the `Recipe` it builds with.
        dtype: `fp32`, `bf16` or `fp16`: the float dtype it computes in (under a quantized one: around the quantized layers).
        quant: a quantization scheme (`int8-dynamic`, ...) or None.
        channels_last: weights and 4-d inputs converted to channels_last inside the program.
        cuda_graphs: loaded with CUDA graph replay (no build of its own: it shares the package of its twin).
        threads: CPU threads baked into the kernels and set at load (None: this process's count, not baked).
    """

    name: str
    recipe: Recipe
    dtype: str
    channels_last: bool = False
    cuda_graphs: bool = False
    threads: int | None = None
    quant: str | None = None

    @property
    def build_key(self) -> tuple:
        """Candidates with the same key share one package (a CUDA-graph twin and its plain one)."""
        return (self.recipe.name, self.dtype, self.channels_last, self.threads, self.quant)

    def inductor_configs(self) -> dict[str, Any]:
        settings = dict(self.recipe.settings)
        if self.threads is not None:
            settings["cpp.threads"] = self.threads
        return settings

    def to_json(self) -> dict:
        return {"recipe": self.recipe.name, "preset": self.recipe.preset, "inductor_configs": self.inductor_configs(),
                "dtype": self.dtype, "quantize": self.quant, "channels_last": self.channels_last, "cuda_graphs": self.cuda_graphs,
                "threads": self.threads}


def device_dtypes(device: str) -> tuple[str, ...]:
    """The floating dtypes this machine computes natively on `device` (CPU: bf16 needs AVX512-BF16 or AMX)."""
    if device == "cuda":
        return ("fp32", "bf16", "fp16") if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else ("fp32", "fp16")
    found = ["fp32"]
    if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)() or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
        found.append("bf16")
    if getattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)():
        found.append("fp16")
    return tuple(found)


def parse_list(text: str | None, what: str, example: str) -> tuple[str, ...] | None:
    """`"a,b"` -> ("a", "b"); None or empty -> None."""
    if text is None:
        return None
    items = tuple(dict.fromkeys(x.strip().lower() for x in str(text).split(",") if x.strip()))
    if not items:
        raise UsageError(f"`--{what}` is empty; write e.g. `--{what} {example}`")
    return items


def plan_candidates(device: str, *, dtypes: tuple[str, ...] | None = None, recipes: tuple[str, ...] | None = None,
                    channels_last: bool = False, threads: tuple[int, ...] | None = None) -> tuple[Candidate, ...]:
    """Every candidate for `device`, cheapest and likeliest first (the time budget cuts from the end).

    Args:
        dtypes: wanted dtypes (default all the device supports); one the device lacks is a `UsageError`.
        recipes: wanted recipe names (default every recipe for the device).
        channels_last: also try channels_last (a model with 4-d floating inputs).
        threads: CPU thread counts to try (default: this process's count, not baked in).

    Raises:
        UsageError: an unknown dtype or recipe, a recipe for another device, a bad thread count.
    """
    supported = device_dtypes(device)
    wanted, schemes = split_dtypes(dtypes, device)
    wanted = wanted if dtypes else supported
    for d in wanted:
        if d not in supported:
            raise UsageError(f"`{d}` is not computed natively on this {device} (it supports {', '.join(supported)}); "
                             f"leave it out: `--dtypes {','.join(supported)}`")
    base = "bf16" if device == "cuda" else "fp32"
    if schemes and base not in supported:
        raise UsageError(f"quantized candidates on {device} compute around the quantized layers in {base}, which this "
                         f"{device} lacks; leave `{','.join(schemes)}` out of `--dtypes`")
    names = recipes or tuple(r.name for r in RECIPES.values() if device in r.devices)
    for name in names:
        recipe = RECIPES.get(name)
        if recipe is None:
            raise UsageError(f"unknown recipe `{name}` in `--recipes`; choose from {', '.join(RECIPES)}")
        if device not in recipe.devices:
            raise UsageError(f"recipe `{name}` is for {'/'.join(recipe.devices)}, not `{device}`; leave it out of `--recipes`")
    if threads is not None and (device != "cpu" or any(t < 1 for t in threads)):
        raise UsageError(f"`--threads {','.join(map(str, threads))}`: thread counts are for `--device cpu` and must be >= 1")
    layouts = (False, True) if channels_last else (False,)
    counts = threads or (None,)
    preferred = "cpu-freeze" if device == "cpu" else "default"
    # never `cpu-gemm` on CPU while another recipe is selected: its C++ GEMM templates crash int8 builds (Scheme.check_settings)
    quant_recipe = preferred if preferred in names else next((n for n in names if n != "cpu-gemm"), names[0])
    out: list[Candidate] = []
    for name in names:  # recipe-major: the cheap recipes in every dtype come before the slow ones
        kinds = [(dtype, None, cl) for dtype in wanted for cl in layouts]
        if name == quant_recipe:
            kinds += [(base, scheme, False) for scheme in schemes]
        for dtype, scheme, cl in kinds:
            for t in counts:
                label = f"{name}-{scheme or dtype}" + ("-cl" if cl else "") + (f"-t{t}" if t is not None else "")
                out.append(Candidate(label, RECIPES[name], dtype, cl, False, t, scheme))
                if device == "cuda":
                    out.append(Candidate(label + "-graphs", RECIPES[name], dtype, cl, True, t, scheme))
    return tuple(out)


def split_dtypes(dtypes: tuple[str, ...] | None, device: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`--dtypes` words -> (float dtypes, quantization schemes), each in the order given.

    Raises:
        UsageError: an unknown word, or a scheme this device cannot run.
    """
    aliases = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}
    floats: list[str] = []
    schemes: list[str] = []
    runnable = device_schemes(device)
    for word in (aliases.get(d, d) for d in dtypes or ()):
        if word in FLOATS:
            floats.append(word)
            continue
        named = _QUANT_WORDS.get(word, (word,) if word in SCHEMES else None)
        if named is None:
            raise UsageError(f"unknown dtype `{word}` in `--dtypes`; use fp32, bf16, fp16, int8, fp8, int4 or a scheme "
                             f"({', '.join(SCHEMES)}), e.g. `--dtypes fp32,bf16,int8`")
        usable = [n for n in named if n in runnable]
        if not usable:
            raise UsageError(f"`{word}` ({', '.join(named)}) does not run on this {device}; "
                             f"its quantized choices are: {', '.join(runnable) or 'none'}")
        schemes += usable
    return tuple(dict.fromkeys(floats)), tuple(dict.fromkeys(schemes))
