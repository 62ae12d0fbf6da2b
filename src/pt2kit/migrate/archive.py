"""Read a TorchScript archive (`torch.jit.save`'s `.pt`) without the model's Python source.

What an archive holds that migration uses: the scripted or traced module (`torch.jit.load`), the schema of each
method (parameter names and types), every attribute and submodule, and, for a module traced by torch 2.x with
`torch.jit.trace`, the dtypes and shapes of the inputs it was traced with (`traced_inputs.pkl`; torch writes their
storages empty, so values are not kept). A traced module's graph has complete input types only in memory: after
`save` and `load` they are plain `Tensor`, so `traced_inputs.pkl` is the only record of shapes an archive carries.
"""

from __future__ import annotations

import inspect
import linecache
import os
import pickle
import typing
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pt2kit.errors import ArtifactError, InputSpecError
from pt2kit.target.inputs import InputSpec, random_tensor, resolve_inputs


@dataclass(frozen=True)
class ScriptArchive:
    """A loaded TorchScript archive.

    Attributes:
        path: the `.pt` file.
        module: the `torch.jit.ScriptModule` (`torch.jit.load`, on the CPU).
        parameters: `forward`'s parameter names, `self` excluded.
        parameter_types: their TorchScript types (`Tensor`, `int`, `Optional[Tensor]`).
        methods: the other methods, each `name(signature)`; an ExportedProgram has one entry point.
        attributes: attribute path -> value, for attributes that are not tensors or modules.
        submodules: qualified names of every submodule.
        recorded_inputs: the dtype and shape of each input `forward` was traced with, when the archive stores them.
        method: the method migrated (`module` is a scripted wrapper whose `forward` calls it, when not `forward`).
    """

    path: Path
    module: torch.jit.ScriptModule = field(repr=False)
    parameters: tuple[str, ...]
    parameter_types: tuple[str, ...]
    methods: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)
    submodules: tuple[str, ...] = ()
    recorded_inputs: tuple[Any, ...] | None = field(default=None, repr=False)
    method: str = "forward"

    @property
    def traced(self) -> bool:
        """Written by `torch.jit.trace` (torch 2.x stores the traced inputs' shapes; scripting stores none)."""
        return self.recorded_inputs is not None

    def signature(self) -> str:
        return f"{self.method}({', '.join(f'{n}: {t}' for n, t in zip(self.parameters, self.parameter_types))})"


def load_archive(path: str | os.PathLike, method: str = "forward") -> ScriptArchive:
    """Load a TorchScript archive with `torch.jit.load` (no model source needed) and list what it holds.

    Args:
        method: the scripted method to migrate; another than `forward` becomes the `forward` of a small scripted
            module that calls it (an ExportedProgram has one entry point).

    Raises:
        ArtifactError: the file is missing, not a TorchScript archive, or has no such method.

    Example:
        >>> archive = load_archive("model.pt"); archive.signature()
        'forward(x: Tensor)'
    """
    path = Path(path)
    module = read_module(path)
    names = module._c._method_names()
    if method not in names:
        raise ArtifactError(f"`{path}` has no method `{method}` (it has: {', '.join(names) or 'none'}); "
                            f"choose one with `--method`")
    qualified = module._c._type().qualified_name()
    others = tuple(str(getattr(module, n).schema).replace(f"{qualified} self, ", "").replace(f"{qualified} self", "")
                   for n in names if n != method)
    iterators = torch._C._jit_debug_module_iterators(module._c)
    attributes = {name: value for name, value in iterators["named_attributes_r"]
                  if not isinstance(value, (torch.Tensor, torch.ScriptObject)) and not name.split(".")[-1].startswith("_")
                  and name.split(".")[-1] != "training"}
    submodules = tuple(name for name, _ in module.named_modules() if name)
    module = method_as_forward(module, method)
    args = module.forward.schema.arguments[1:]
    return ScriptArchive(
        path=path, module=module, parameters=tuple(a.name for a in args), parameter_types=tuple(str(a.type) for a in args),
        methods=others, attributes=attributes, submodules=submodules, recorded_inputs=_traced_inputs(path, method),
        method=method,
    )


def read_module(path: Path) -> torch.jit.ScriptModule:
    """`torch.jit.load` on the CPU, in eval mode, with a clear error for a file that is not an archive."""
    if not path.is_file():
        raise ArtifactError(f"TorchScript archive `{path}` does not exist; save one with `torch.jit.save(torch.jit.script(model), path)`")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError/ValueError/pickle errors for a file that is not an archive
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        if "constants.pkl" in first or "code/" in first:
            first = "it holds no TorchScript code: a torch.save or torch.export file?"
        raise ArtifactError(f"`{path}` is not a TorchScript archive ({first}); pass a file written by `torch.jit.save`, "
                            "or export a Python model with `pt2kit export file.py:NAME`") from None
    return module.eval()


def method_as_forward(module: torch.jit.ScriptModule, method: str) -> torch.jit.ScriptModule:
    """`module` itself for `forward`; for another method, a scripted module whose `forward` calls it.

    TorchScript compiles from source, so the caller's two lines are generated from the method's schema and
    registered with `linecache` under a name that says where they came from.
    """
    if method == "forward":
        return module
    schema = getattr(module, method).schema
    arguments = schema.arguments[1:]
    returns = [r.type.annotation_str for r in schema.returns]
    result = returns[0] if len(returns) == 1 else f"Tuple[{', '.join(returns)}]"
    source = (f"def forward(self, {', '.join(f'{a.name}: {a.type.annotation_str}' for a in arguments)}) -> {result}:\n"
              f"    return self.scripted.{method}({', '.join(a.name for a in arguments)})\n")
    filename = f"<pt2kit migrate: calls {method}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), {"torch": torch, "Tensor": torch.Tensor, **vars(typing)}, namespace)

    class CallsMethod(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scripted = module

    CallsMethod.forward = namespace["forward"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(CallsMethod()).eval()


@dataclass(frozen=True)
class RecordedTensor:
    """The dtype and shape of one input `torch.jit.trace` recorded (its values are not stored)."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    def __str__(self) -> str:
        return f"{str(self.dtype).removeprefix('torch.')}[{','.join(map(str, self.shape))}]"


class _TracedInputsUnpickler(pickle.Unpickler):
    """Reads `traced_inputs.pkl` into `RecordedTensor`s: it allows only the few globals that file uses, and never
    reads tensor bytes (torch writes the storages of traced inputs empty, so only dtypes and shapes survive)."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return lambda value, _type: value
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda dtype, _offset, size, *_rest: RecordedTensor(dtype, tuple(size))
        if (module, name) == ("collections", "OrderedDict"):
            return dict
        if module == "torch" and name.endswith("Storage"):
            return getattr(torch, name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in traced inputs")

    def persistent_load(self, pid):
        _, storage_type, _key, _location, _numel = pid
        return storage_type.dtype if hasattr(storage_type, "dtype") else torch.float32


def _traced_inputs(path: Path, method: str = "forward") -> tuple[Any, ...] | None:
    """The dtypes and shapes of the inputs `torch.jit.trace` stored for `method` (torch 2.x), or None."""
    import io

    try:
        with zipfile.ZipFile(path) as zf:
            entry = next((n for n in zf.namelist() if n.endswith("/traced_inputs.pkl")), None)
            if entry is None:
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TypedStorage is deprecated, yet it is what the pickle names
                stored = _TracedInputsUnpickler(io.BytesIO(zf.read(entry))).load()
    except Exception:  # an unreadable record is no record: the user is asked for --input instead
        return None
    values = stored.get(method) if isinstance(stored, dict) else None
    return tuple(values) if values else None


def example_inputs(archive: ScriptArchive, specs: list[InputSpec], seed: int = 0) -> tuple[tuple, str]:
    """`forward`'s example arguments, positional in parameter order, and where they came from.

    From `--input` when given (named or positional), else from the inputs recorded at tracing.

    Raises:
        InputSpecError: no inputs given and none recorded, or given inputs that do not bind to `forward`.
    """
    names = list(archive.parameters)
    if not specs:
        recorded = archive.recorded_inputs
        if recorded is not None and len(recorded) == len(names) and all(isinstance(r, RecordedTensor) for r in recorded):
            generator = torch.Generator().manual_seed(seed)
            # integers in [0, 2): valid token ids, masks and indices for any model; --input gives a wider range
            args = tuple(random_tensor(r.dtype, r.shape, 0, 2, generator) if not r.dtype.is_floating_point
                         else random_tensor(r.dtype, r.shape, None, None, generator) for r in recorded)
            shapes = ", ".join(f"{n}={r}" for n, r in zip(names, recorded))
            return args, (f"the archive's traced input shapes ({shapes}); values are random (floats normal, integers "
                          "in [0, 2)): torch records shapes, not values")
        wanted = " ".join(f"--input {n}=float32[...]" if t == "Tensor" else f"--input {n}=VALUE"
                          for n, t in zip(names, archive.parameter_types))
        raise InputSpecError(f"`{archive.path}` records no example inputs for {archive.signature()} (a scripted module, or one "
                             f"traced without stored inputs); give them, e.g. `{wanted}`")
    positional, named = resolve_inputs(specs, seed=seed)
    unknown = sorted(set(named) - set(names))
    if unknown:
        raise InputSpecError(f"`--input {unknown[0]}=...`: {archive.signature()} has no parameter `{unknown[0]}`; "
                             f"use one of {', '.join(names)}")
    if len(positional) > len(names):
        raise InputSpecError(f"{len(positional)} positional inputs given but {archive.signature()} takes {len(names)}")
    bound = dict(zip(names, positional))
    for name, value in named.items():
        if name in bound:
            raise InputSpecError(f"input `{name}` is given twice (by position and by name); give it once")
        bound[name] = value
    missing = [n for n in names if n not in bound]
    if missing:
        raise InputSpecError(f"no input for `{missing[0]}` of {archive.signature()}; add `--input {missing[0]}=...`")
    return tuple(bound[n] for n in names), "--input"


def named_module(inner: torch.nn.Module, parameters: tuple[str, ...] | list[str], name: str) -> torch.nn.Module:
    """`inner` behind an `nn.Module` whose `forward` has the archive's parameter names, so manifests, `--dynamic`
    and verification name inputs as the scripted model does (a ScriptModule's `forward` has no Python signature)."""

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = inner

        def forward(self, *args, **kwargs):
            return self.model(*args, **kwargs)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    Scripted.forward.__signature__ = inspect.Signature([inspect.Parameter(n, kind) for n in ["self", *parameters]])
    Scripted.__name__ = Scripted.__qualname__ = name
    return Scripted()  # the inner module is already in eval mode (an unlifted program refuses `.train()`)


__all__ = ["RecordedTensor", "ScriptArchive", "example_inputs", "load_archive", "method_as_forward", "named_module", "read_module"]
