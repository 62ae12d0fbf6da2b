"""Build each mode and load it the way a user would, timing the build and the load.

- eager: the module itself.
- compile: `torch.compile(module)` with its defaults; the compile happens on the first call.
- export: `pt2kit.export_program` to a `.pt2`, then `pt2kit.load` (input checks included).
- aoti: that `.pt2` through AOTInductor (`pt2kit.compile_package`) into a package, then `pt2kit.load`;
  `aoti-raw` is the same package loaded by `torch._inductor.aoti_load_package` and called
  directly: no pt2kit in the call path (no second build, a second load).
- onnxruntime: `torch.onnx.export` (the TorchScript-based exporter, else the dynamo-based one),
  then an `InferenceSession` on the CPU provider.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils import _pytree as pytree

from pt2kit.benchmark.report import BenchMode
from pt2kit.target.resolve import Target


class ModeUnavailable(Exception):
    """The mode cannot run here (a missing package or provider): skipped, not failed."""


@dataclass
class Built:
    """A mode ready to call at some batch sizes, and what making it cost.

    `fn(args, kwargs)` runs one call. `build_on_first_call` marks torch.compile, whose
    build is the first call at each batch size.
    """

    fn: Callable[[tuple, dict], Any]
    build_s: float | None
    load_s: float
    artifact_bytes: int | None
    build_on_first_call: bool = False
    raw: "Built | Exception | None" = None  # aoti: the package loaded by torch alone (or why that failed)
    prepare: Callable[[tuple, dict], tuple[tuple, dict]] | None = None  # inputs -> what fn takes, once per batch size


@dataclass
class BuildContext:
    """What every builder needs: the prepared model, its inputs at the build batch, where to write."""

    target: Target
    args: tuple
    kwargs: dict
    dynamic: str | None  # the --dynamic spec of the build (None: static shapes)
    device: str
    workdir: Path
    tag: str  # distinguishes artifacts of several builds (one per batch size)
    threads: int | None = None  # CPU threads for onnxruntime (torch's are set by the harness)
    programs: dict[str, Any] = field(default_factory=dict)  # tag -> (.pt2, export seconds) or the export's error
    cuda_graphs: bool = False  # aoti: load the package with CUDA graph replay
    artifact: Path | None = None  # artifact: the existing package to time


def build(mode: BenchMode, ctx: BuildContext) -> Built:
    """Make `mode` runnable. Raises ModeUnavailable to skip, anything else to fail."""
    if mode is BenchMode.EAGER:
        module = ctx.target.module
        return Built(lambda a, k: module(*a, **k), None, 0.0, None)
    if mode is BenchMode.COMPILE:
        compiled = torch.compile(ctx.target.module)
        return Built(lambda a, k: compiled(*a, **k), None, 0.0, None, build_on_first_call=True)
    if mode is BenchMode.EXPORT:
        return _build_export(ctx)
    if mode is BenchMode.AOTI:
        return _build_aoti(ctx)
    if mode is BenchMode.ONNXRUNTIME:
        return _build_onnxruntime(ctx)
    if mode is BenchMode.ARTIFACT:
        return _build_artifact(ctx)
    raise ValueError(f"no builder for mode {mode}")


def _program(ctx: BuildContext) -> tuple[Path, float]:
    """The `.pt2` for this build (exported once, shared by export and aoti) and its export seconds."""
    if ctx.tag not in ctx.programs:
        from pt2kit.export.program import export_program

        path = ctx.workdir / f"program{ctx.tag}.pt2"
        target = dataclasses.replace(ctx.target, args=ctx.args, kwargs=ctx.kwargs)
        start = time.perf_counter()
        try:
            export_program(target, path, dynamic=ctx.dynamic or "", check_specialization=False)
            ctx.programs[ctx.tag] = (path, time.perf_counter() - start)
        except Exception as exc:  # remembered, so the next mode does not export again only to fail again
            ctx.programs[ctx.tag] = exc
    if isinstance(ctx.programs[ctx.tag], Exception):
        raise ctx.programs[ctx.tag]
    return ctx.programs[ctx.tag]


def _build_export(ctx: BuildContext) -> Built:
    from pt2kit.runtime.loaded import load

    path, export_s = _program(ctx)
    start = time.perf_counter()
    artifact = load(path)
    load_s = time.perf_counter() - start
    return Built(lambda a, k: artifact(*a, **k), export_s, load_s, path.stat().st_size)


def _build_aoti(ctx: BuildContext) -> Built:
    from pt2kit.runtime.loaded import load

    program, export_s = _program(ctx)
    package = ctx.workdir / f"package{ctx.tag}.pt2"
    start = time.perf_counter()
    _compile_package(program, package, ctx.device)
    build_s = export_s + time.perf_counter() - start
    index = int(ctx.device.partition(":")[2]) if ctx.device.startswith("cuda:") else -1
    start = time.perf_counter()
    artifact = load(package, device_index=index, cuda_graphs=ctx.cuda_graphs)
    load_s = time.perf_counter() - start
    size = package.stat().st_size
    return Built(lambda a, k: artifact(*a, **k), build_s, load_s, size, raw=_load_raw(package, index, build_s, size))


def _build_artifact(ctx: BuildContext) -> Built:
    """An existing package or program, loaded with its manifest's load options; inputs cast to the dtypes it takes."""
    from pt2kit.runtime.loaded import load

    index = int(ctx.device.partition(":")[2]) if ctx.device.startswith("cuda:") else -1
    start = time.perf_counter()
    artifact = load(ctx.artifact, device_index=index, cuda_graphs=True if ctx.cuda_graphs else None)
    load_s = time.perf_counter() - start
    wanted = [leaf.dtype for leaf in artifact.manifest.inputs] if artifact.manifest else []

    def prepare(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        leaves, spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
        cast = [getattr(torch, d) if isinstance(x, torch.Tensor) and x.is_floating_point() and d and hasattr(torch, d) else None
                for x, d in zip(leaves, wanted + [None] * len(leaves))]
        leaves = [x.to(c) if c is not None else x for x, c in zip(leaves, cast)]
        return pytree.tree_unflatten(leaves, spec)

    return Built(lambda a, k: artifact(*a, **k), None, load_s, ctx.artifact.stat().st_size, prepare=prepare)


def _load_raw(package: Path, device_index: int, build_s: float, size: int) -> Built | Exception:
    """The same package through `torch._inductor.aoti_load_package`, no pt2kit in the call path.

    A package with per-tensor weights (`--external-weights tensors`) goes through torch's `load_pt2(...,
    load_weights_from_disk=True)`, the plain-torch way to load it (`aoti_load_package` would leave out its weights).
    """
    import torch._inductor

    from pt2kit.runtime.weights import StoredWeights

    try:
        start = time.perf_counter()
        if StoredWeights.find(package) is not None:
            from torch.export.pt2_archive._package import load_pt2

            runner = load_pt2(str(package), device_index=device_index, load_weights_from_disk=True).aoti_runners["model"]
        else:
            runner = torch._inductor.aoti_load_package(str(package), device_index=device_index)
        return Built(lambda a, k: runner(*a, **k), build_s, time.perf_counter() - start, size)
    except Exception as exc:  # pt2kit.load worked, so the aoti row stands; say why the raw one is missing
        return exc


def _compile_package(program: Path, package: Path, device: str) -> None:
    """`pt2kit.compile_package`, uncached: the build time reported is a real build."""
    from pt2kit.compile import compile_package

    compile_package(program, package, device=device.split(":")[0], use_cache=False)


def _build_onnxruntime(ctx: BuildContext) -> Built:
    if importlib.util.find_spec("onnxruntime") is None:
        raise ModeUnavailable("onnxruntime is not installed; `pip install onnxruntime onnx` to compare with it")
    if not ctx.device.startswith("cpu"):
        raise ModeUnavailable("the onnxruntime mode runs on its CPU provider only; run `--device cpu` to compare with it")
    if any(isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 for t in pytree.tree_leaves((ctx.args, ctx.kwargs))):
        raise ModeUnavailable("bfloat16 inputs cannot be passed to onnxruntime through numpy; compare it in float32")
    import onnxruntime as ort

    folder = ctx.workdir / f"onnx{ctx.tag}"
    folder.mkdir(exist_ok=True)
    path = folder / "model.onnx"
    flat = FlatTensorInputs(ctx.target.module, ctx.args, ctx.kwargs, ctx.target.parameter_names)
    start = time.perf_counter()
    exporter = _onnx_export(flat, ctx, path)
    build_s = time.perf_counter() - start
    options = ort.SessionOptions()
    if ctx.threads:
        options.intra_op_num_threads = ctx.threads
    start = time.perf_counter()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - start
    wanted = [i.name for i in session.get_inputs()]
    index = {name: i for i, name in enumerate(flat.names)}
    if any(n not in index for n in wanted):
        raise RuntimeError(f"the ONNX graph ({exporter} exporter) takes inputs {wanted}, not the model's {flat.names}")

    def run(args: tuple, kwargs: dict) -> Any:
        tensors = flat.tensors(args, kwargs)
        return session.run(None, {n: tensors[index[n]].numpy() for n in wanted})

    return Built(run, build_s, load_s, onnx_bytes(path))


def onnx_bytes(path: Path) -> int:
    """Size of an ONNX model: the `.onnx` file plus the external-data files it names, and nothing else in its
    folder (a `--keep` folder may hold files of earlier runs)."""
    files = {path}
    try:
        import onnx
        from onnx.external_data_helper import uses_external_data

        model = onnx.load(str(path), load_external_data=False)
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                where = next((e.value for e in tensor.external_data if e.key == "location"), None)
                if where:
                    files.add(path.parent / where)
    except ImportError:  # no onnx package: count the model file alone
        pass
    return sum(f.stat().st_size for f in files if f.is_file())


class FlatTensorInputs(torch.nn.Module):
    """The model called with its tensor inputs as plain positional arguments, for the ONNX exporters.

    Non-tensor inputs (a `scale=2.0` keyword, say) are fixed at their example values, as export
    fixes them; keyword-only parameters and nested inputs become positional tensors named after
    their place (`mask`, `pair_0`).
    """

    def __init__(self, module: torch.nn.Module, args: tuple, kwargs: dict, parameter_names: list[str]):
        super().__init__()
        self.module = module
        # a new Module starts in training mode, and torch.onnx.export puts the wrapper back into the mode it found
        # it in with `train()`, which recurses: without this line the user's model came back in training mode
        # (every BatchNorm then used batch statistics). Set the flag alone: `.train(...)` would recurse too.
        self.training = module.training
        flat, self._spec = pytree.tree_flatten_with_path((tuple(args), dict(kwargs)))
        self._leaves = [value for _, value in flat]
        self._where = [i for i, (_, value) in enumerate(flat) if isinstance(value, torch.Tensor)]
        self.names = [_leaf_name(flat[i][0], parameter_names) for i in self._where]

    def tensors(self, args: tuple, kwargs: dict) -> list[torch.Tensor]:
        return [t for t in pytree.tree_leaves((tuple(args), dict(kwargs))) if isinstance(t, torch.Tensor)]

    def forward(self, *tensors: torch.Tensor) -> Any:
        leaves = list(self._leaves)
        for i, t in zip(self._where, tensors):
            leaves[i] = t
        args, kwargs = pytree.tree_unflatten(leaves, self._spec)
        return self.module(*args, **kwargs)


def _leaf_name(path: tuple, parameter_names: list[str]) -> str:
    top = path[1]
    if path[0].idx == 0:
        base = parameter_names[top.idx] if top.idx < len(parameter_names) else f"arg{top.idx}"
    else:
        base = str(top.key)
    rest = "".join(f"_{getattr(k, 'idx', getattr(k, 'key', ''))}" for k in path[2:])
    return base + rest


def _onnx_export(flat: FlatTensorInputs, ctx: BuildContext, path: Path) -> str:
    """Export with the TorchScript-based exporter; fall back to the dynamo-based one. Returns which worked."""
    batched = _batched(flat, ctx)
    example = tuple(flat.tensors(ctx.args, ctx.kwargs))
    try:
        torch.onnx.export(flat, example, str(path), dynamo=False, input_names=flat.names,
                          dynamic_axes={flat.names[i]: {0: "batch"} for i in batched} or None)
        return "torchscript"
    except Exception:
        if importlib.util.find_spec("onnxscript") is None:
            raise
    batch = torch.export.Dim("batch")
    shapes = tuple({0: batch} if i in batched else None for i in range(len(example)))
    torch.onnx.export(flat, example, str(path), dynamo=True, input_names=flat.names,
                      dynamic_shapes=shapes if batched else None, external_data=True)
    return "dynamo"


def _batched(flat: FlatTensorInputs, ctx: BuildContext) -> list[int]:
    """Indices of the tensor inputs whose dim 0 is the dynamic batch of this build."""
    if not ctx.dynamic:
        return []
    names = {entry.split(":")[0] for entry in ctx.dynamic.split(",")}
    return [i for i, n in enumerate(flat.names) if n in names]
