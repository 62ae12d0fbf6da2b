"""`--quantize SCHEME`: quantize a program's linear layers, then export again.

| scheme | devices | method | what runs |
| --- | --- | --- | --- |
| `int8-dynamic` | cpu | PT2E, `X86InductorQuantizer` (dynamic) | int8 weights, activations quantized per tensor at run time, oneDNN int8 linear (`qlinear_pointwise`) |
| `int8-static` | cpu | PT2E, `X86InductorQuantizer` (static, calibrated on the example inputs) | int8 weights, activation ranges fixed at build time, oneDNN int8 linears writing uint8 for the next |
| `int8-dynamic` | cuda | torchao `Int8DynamicActivationInt8WeightConfig()` | int8 weights per channel, activations per token, int8 GEMM |
| `int8-weight-only` | cpu, cuda | torchao `Int8WeightOnlyConfig()` | int8 weights dequantized in the GEMM, activations in the float dtype |
| `fp8-dynamic` | cuda, compute capability >= 8.9 | torchao `Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())` | fp8 e4m3 weights and activations with per-row scales |
| `int4-weight-only` | cuda | torchao `Int4WeightOnlyConfig(group_size=128)` | int4 weights in groups of 128, bf16 activations |

On CPU, int8-dynamic goes through PT2E because it measured faster than torchao's config there (its int8 GEMM is
`aten._int_mm` between fused quantize kernels; PT2E's patterns lower to oneDNN's fused int8 linear with prepacked
weights; benchmarks/tune/quantize.md). PT2E annotates `aten.linear` in the program's graph directly. For torchao, a
program has lost its module types (`ExportedProgram.module()` is a graph of `aten.linear` calls), so each
`aten.linear` whose weight is a parameter becomes an `nn.Linear` again (`linear_modules`), `quantize_` swaps those
weights for its quantized tensors, and `unwrap_tensor_subclass` turns them into plain tensors. Either way the
module is exported again with the same dynamic dims. Only linear layers are quantized (convolutions stay in the
float dtype; PT2E is told so, since its global config would take convolutions and matmuls too). On CUDA the float dtype under the quantized layers is bf16 unless `--dtype` says otherwise (fp8 and
int4 kernels take bf16 activations). The calling contract is kept as `--dtype` keeps it (`CastInside`), unless
`io="low"`.

torchao is an optional dependency (`pip install 'pt2kit[quant]'`), imported only here and only when a scheme is
asked for (PT2E's quantizer ships in torchao too).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io as _io
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

import torch
from torch.utils import _pytree as pytree

from pt2kit.artifact.manifest import Manifest, rebuild_manifest
from pt2kit.capture.capture import export_module
from pt2kit.compile.dtype import DType, check_io, dynamic_shapes_for, keep_interface
from pt2kit.errors import ExportFailed, UsageError

INSTALL = "pip install 'pt2kit[quant]'"


@dataclass(frozen=True)
class Scheme:
    """A quantization scheme: the devices it runs on, and the float dtype under it on CUDA."""

    name: str
    summary: str
    devices: tuple[str, ...]
    min_capability: tuple[int, int] | None = None  # CUDA compute capability it needs

    def config(self) -> Any:
        """The torchao config object (imports torchao)."""
        ao = import_torchao()
        if self.name == "int8-dynamic":
            return ao.quantization.Int8DynamicActivationInt8WeightConfig()
        if self.name == "int8-weight-only":
            return ao.quantization.Int8WeightOnlyConfig()
        if self.name == "fp8-dynamic":
            return ao.quantization.Float8DynamicActivationFloat8WeightConfig(granularity=ao.quantization.PerRow())
        return ao.quantization.Int4WeightOnlyConfig(group_size=128)

    def method(self, device: str, cast: DType | None) -> str:
        """`pt2e-x86` for int8-dynamic on a float32 CPU program (measured faster: benchmarks/tune/quantize.md),
        `pt2e-x86-static` for int8-static, else `torchao`."""
        if self.name == "int8-static":
            return "pt2e-x86-static"
        if self.name == "int8-dynamic" and device == "cpu" and cast in (None, DType.FP32):
            return "pt2e-x86"
        return "torchao"

    def inductor_configs(self, device: str, cast: DType | None) -> dict[str, Any]:
        """Settings the scheme needs from the build: PT2E's int8 linears are fused by Inductor's freezing passes.

        Dynamic PT2E also realizes small pointwise results that are read more than once
        (`realize_opcount_threshold`): otherwise Inductor inlines the activation scale, `(max - min) / 255`, into
        the loop that quantizes the activation, and as that loop stores bytes (which may alias anything) the
        compiler recomputes the scale, three divisions, for every 16 values: the six quantize kernels of the MLP
        of benchmarks/tune/quantize.md took 0.35 ms a call, 4 % of the package, and took 2-4 % less after, with
        bit-identical outputs.
        """
        method = self.method(device, cast)
        if method == "pt2e-x86":
            return {"freezing": True, "realize_opcount_threshold": 3}
        return {"freezing": True} if method == "pt2e-x86-static" else {}

    def check_settings(self, device: str, cast: DType | None, settings: Mapping[str, Any]) -> None:
        """Refuse Inductor settings this scheme's build cannot take.

        PT2E int8 on CPU with `max_autotune` and the C++ GEMM templates: Inductor benchmarks its C++ int8 template
        against oneDNN's for every int8 linear (`qlinear_unary`), and in torch 2.13 that benchmark corrupts the heap
        and kills the process (abort or segfault), a crash no `except` can catch; with the template as the only
        backend the build finishes and the package segfaults at its first call (both measured on a 2-core
        AVX512-VNNI EPYC, benchmarks/tune/quantize.md).

        Raises:
            UsageError: such settings, with the preset to use instead; int8-static on a cast program (its PT2E
                quantizer takes float32 only).
        """
        if self.name == "int8-static" and cast not in (None, DType.FP32):
            raise UsageError(f"`--quantize int8-static` quantizes a float32 program and cannot compute in {cast.value}; "
                             "leave `--dtype` out")
        if not self.method(device, cast).startswith("pt2e-x86") or not (settings.get("max_autotune") or settings.get("max_autotune_gemm")):
            return
        import torch._inductor.config as inductor_config

        backends = str(settings.get("max_autotune_gemm_backends", inductor_config.max_autotune_gemm_backends)).upper()
        if "CPP" in (b.strip() for b in backends.split(",")):
            raise UsageError(f"`--quantize {self.name}` on {device} cannot be built with `max_autotune` and the C++ GEMM "
                             f"templates (Inductor's C++ int8 GEMM crashes the process in torch {torch.__version__.split('+')[0]}); "
                             "use `--preset cpu-freeze`")

    def base_dtype(self, device: str) -> DType | None:
        """The float dtype of everything around the quantized layers when `--dtype` is not given."""
        return DType.BF16 if device == "cuda" else None


SCHEMES: Mapping[str, Scheme] = MappingProxyType({s.name: s for s in (
    Scheme("int8-dynamic", "int8 weights and per-token dynamic int8 activations", ("cpu", "cuda")),
    Scheme("int8-static", "int8 weights and int8 activations, ranges calibrated on the example inputs", ("cpu",)),
    Scheme("int8-weight-only", "int8 weights, float activations", ("cpu", "cuda")),
    Scheme("fp8-dynamic", "fp8 (e4m3) weights and dynamic activations, per-row scales", ("cuda",), (8, 9)),
    Scheme("int4-weight-only", "int4 weights in groups of 128, bf16 activations", ("cuda",)),
)})


def device_schemes(device: str) -> tuple[str, ...]:
    """The schemes this machine can run on `device` (fp8 needs compute capability 8.9 or newer)."""
    return tuple(s.name for s in SCHEMES.values() if _unsupported(s, device) is None)


def _unsupported(scheme: Scheme, device: str) -> str | None:
    if device not in scheme.devices:
        return f"runs on {'/'.join(scheme.devices)} only"
    if scheme.min_capability and device == "cuda" and torch.cuda.is_available():
        cc = torch.cuda.get_device_capability()
        if cc < scheme.min_capability:
            return f"needs compute capability {'.'.join(map(str, scheme.min_capability))} or newer; this GPU has {cc[0]}.{cc[1]}"
    return None


def get_scheme(name: str, device: str) -> Scheme:
    """The scheme called `name`, checked against `device`.

    Raises:
        UsageError: unknown name, or a scheme this device cannot run.
    """
    scheme = SCHEMES.get(str(name).lower())
    if scheme is None:
        raise UsageError(f"unknown quantization scheme `{name}`; choose one of: {', '.join(SCHEMES)} (e.g. `--quantize int8-dynamic`)")
    why = _unsupported(scheme, device)
    if why:
        choices = ", ".join(device_schemes(device)) or "none"
        raise UsageError(f"`--quantize {scheme.name}` {why}; on {device} use one of: {choices}")
    return scheme


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    """torchao logs a warning per CUDA kernel library it cannot load (every CPU machine): keep them off stderr."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(_io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def import_torchao():
    """`torchao`, imported quietly; a one-line `UsageError` with the install command when it is missing."""
    try:
        with _quiet_import():
            import torchao
            import torchao.quantization  # noqa: F401
            import torchao.utils  # noqa: F401
    except ImportError:
        raise UsageError(f"quantization needs torchao, which is not installed; install it with `{INSTALL}`") from None
    return torchao


def torchao_version() -> str:
    return str(getattr(import_torchao(), "__version__", "unknown"))


def linear_modules(gm: torch.fx.GraphModule) -> list[str]:
    """Turn each `aten.linear(x, weight[, bias])` whose weight is a parameter into a call of an `nn.Linear` holding it.

    Returns the names of the layers (the weight's path without `.weight`), in graph order.
    """
    params = dict(gm.named_parameters()) | dict(gm.named_buffers())
    names: list[str] = []
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.linear.default:
            continue
        weight = node.args[1] if len(node.args) > 1 else None
        bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
        if not (isinstance(weight, torch.fx.Node) and weight.op == "get_attr" and weight.target in params):
            continue
        if bias is not None and not (isinstance(bias, torch.fx.Node) and bias.op == "get_attr" and bias.target in params):
            continue
        w = params[weight.target]
        if w.dim() != 2 or not w.is_floating_point():
            continue
        layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=bias is not None, device=w.device, dtype=w.dtype)
        layer.weight = torch.nn.Parameter(w.detach(), requires_grad=False)
        if bias is not None:
            layer.bias = torch.nn.Parameter(params[bias.target].detach(), requires_grad=False)
        name = weight.target.removesuffix(".weight")
        slot = "pt2kit_q_" + name.replace(".", "_")
        gm.add_submodule(slot, layer)
        with gm.graph.inserting_before(node):
            call = gm.graph.call_module(slot, (node.args[0],))
        node.replace_all_uses_with(call)
        gm.graph.erase_node(node)
        names.append(name)
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return names


def quantize_program(ep: torch.export.ExportedProgram, manifest: Manifest, scheme: Scheme, device: str, *,
                     dtype: DType | None = None, io: str = "model",
                     quantize: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> tuple[torch.export.ExportedProgram, Manifest]:
    """`ep` with its linear layers quantized by `scheme`, exported again on `device`.

    Args:
        dtype: the float dtype around the quantized layers (default: the scheme's base for the device, else kept).
        io: `model` keeps the program's input and output dtypes (casts inside); `low` exposes `dtype`.
        quantize: module -> quantized module (default: the scheme's method for the device; a seam for tests).

    Returns:
        The new program and its manifest; `extra["quantization"]` records the scheme, the method, the torchao
        version and the layers quantized.

    Raises:
        UsageError: torchao is missing, or the program has no linear layer to quantize.
        ExportFailed: torchao or torch cannot quantize or export the program with this scheme.
    """
    check_io(io)
    import_torchao()
    cast = dtype or scheme.base_dtype(device)
    if device != "cpu":
        from torch.export.passes import move_to_device_pass

        # the whole program, lifted constants included: `Module.to` would move parameters and buffers only
        # (BERT's fp8 build on an H100 failed on a constant left on the CPU)
        ep = move_to_device_pass(ep, f"cuda:{torch.cuda.current_device()}")
    inner = copy.deepcopy(ep.module())  # quantizing and casting change parameters in place: never the caller's
    # a layer whose result the program never returns (BERT's pooler behind a last-hidden-state wrapper) stays in the
    # graph without users, and PT2E's partition matching fails on it (IndexError): drop it first
    inner.graph.eliminate_dead_code()
    inner.recompile()
    names = list(manifest.parameters) or [p for p in inspect.signature(inner.forward).parameters]
    weights = linear_weights(inner)
    if not weights:
        raise UsageError(f"`--quantize {scheme.name}` found no linear layer (`nn.Linear`) whose weight is a parameter in "
                         f"the program; quantization applies to linear layers only, so leave `--quantize` out")
    args, kwargs = ep.example_inputs or ((), {})
    args, kwargs = pytree.tree_map(lambda v: v.to(device) if isinstance(v, torch.Tensor) else v, (tuple(args), dict(kwargs)))
    if cast is not None:
        inner = inner.to(cast.torch_dtype)
    inner_args, inner_kwargs = (args, kwargs) if cast is None else pytree.tree_map(
        lambda v: v.to(cast.torch_dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v, (args, kwargs))
    method = scheme.method(device, cast)
    try:
        with _quiet_import():
            quantized = (quantize or _QUANTIZERS[method](scheme, inner_args, inner_kwargs))(inner)
        module = quantized if cast is None or io == "low" else keep_interface(quantized, ep, cast.torch_dtype)
        args, kwargs = (inner_args, inner_kwargs) if io == "low" else (args, kwargs)
        new = export_module(module, args, kwargs,
                            dynamic_shapes=dynamic_shapes_for(ep, manifest, args, kwargs, names))
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ExportFailed(f"quantization scheme `{scheme.name}` cannot be exported here ({type(exc).__name__}: {reason}); "
                           f"try another `--quantize` scheme or leave it out") from None
    layers = list(weights.values()) if method == "torchao" else _dequantized_linears(quantized, weights)
    record = {"scheme": scheme.name, "method": METHODS[method], "torchao_version": torchao_version(), "modules": layers,
              "dtype": cast.value if cast else None}
    extra = {"quantization": record, **({"dtype": cast.value, "io": io} if cast is not None else {})}
    return new, rebuild_manifest(new, manifest, extra=extra)


METHODS = {"torchao": "torchao quantize_", "pt2e-x86": "PT2E X86InductorQuantizer (dynamic), oneDNN int8 linear",
           "pt2e-x86-static": "PT2E X86InductorQuantizer (static, calibrated on the example inputs), oneDNN int8 linear"}


def _torchao(scheme: Scheme, args: tuple, kwargs: dict) -> Callable[[torch.nn.Module], torch.nn.Module]:
    def run(module: torch.nn.Module) -> torch.nn.Module:
        ao = import_torchao()
        linear_modules(module)
        ao.quantization.quantize_(module, scheme.config())
        # export keeps torchao's tensor subclasses as the program's weights, which neither the manifest's weight
        # summary nor the build cache's digest can read: unwrap them into plain tensors and the ops that use them
        ao.utils.unwrap_tensor_subclass(module)
        return module

    return run


def _pt2e_x86(scheme: Scheme, args: tuple, kwargs: dict, *, dynamic: bool = True) -> Callable[[torch.nn.Module], torch.nn.Module]:
    def run(module: torch.nn.Module) -> torch.nn.Module:
        import torchao.quantization.pt2e.inductor_passes.x86  # noqa: F401  registers the freezing patterns to oneDNN int8
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        # linear layers only, as in every scheme: a global config would also quantize the convolutions' weights
        # (dynamic and static) and the attention's matmuls (static), which the manifest's record did not list
        quantizer = x86.X86InductorQuantizer().set_function_type_qconfig(torch.nn.functional.linear,
                                                                         x86_config(x86, dynamic=dynamic))
        prepared = prepare_pt2e(module, quantizer)
        with torch.no_grad():
            # dynamic: this one call only lets the weight observers see the weights; static: it also records each
            # activation's range, which the package then uses for every input (calibration on the example inputs)
            prepared(*args, **kwargs)
        return convert_pt2e(prepared)

    return run


def _pt2e_x86_static(scheme: Scheme, args: tuple, kwargs: dict) -> Callable[[torch.nn.Module], torch.nn.Module]:
    return _pt2e_x86(scheme, args, kwargs, dynamic=False)


def x86_config(x86, *, dynamic: bool = True) -> Any:
    """torchao's default X86InductorQuantizer config, with the weight scales' floor lowered from 2**-12.

    The default floor (`eps=2**-12`, fbgemm's and qnnpack's limit, not oneDNN's) raises the scale of every output
    channel whose largest |weight| is below 127 * 2**-12 = 0.031, so such a channel uses only part of the int8 range:
    on the MLP of benchmarks/tune/quantize.md (a 4096-wide linear's default init stays within 1/64) that made the
    package's error 11% larger than ONNX Runtime's `quantize_dynamic`. float32's eps keeps a zero channel finite.
    """
    from torchao.quantization.pt2e.observer import PerChannelMinMaxObserver  # the default's weight observer

    config = x86.get_default_x86_inductor_quantization_config(is_dynamic=dynamic)
    observer = PerChannelMinMaxObserver.with_args(eps=torch.finfo(torch.float32).eps)
    return dataclasses.replace(config, weight=dataclasses.replace(config.weight, observer_or_fake_quant_ctr=observer))


_QUANTIZERS = {"torchao": _torchao, "pt2e-x86": _pt2e_x86, "pt2e-x86-static": _pt2e_x86_static}


def linear_weights(gm: torch.fx.GraphModule) -> dict[str, str]:
    """{linear node name: its weight's path} for each `aten.linear` whose weight is a parameter."""
    params = dict(gm.named_parameters()) | dict(gm.named_buffers())
    found = {}
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.ops.aten.linear.default and len(node.args) > 1:
            weight = node.args[1]
            if isinstance(weight, torch.fx.Node) and weight.op == "get_attr" and weight.target in params:
                found[node.name] = weight.target.removesuffix(".weight")
    return found


def _dequantized_linears(gm: torch.fx.GraphModule, weights: dict[str, str]) -> list[str]:
    """The layers (by weight path) whose linear now takes a dequantized int8 weight."""
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.ops.aten.linear.default and len(node.args) > 1:
            weight = node.args[1]
            if isinstance(weight, torch.fx.Node) and "dequantize" in str(weight.target):
                out.append(weights.get(node.name, node.name))
    return out
