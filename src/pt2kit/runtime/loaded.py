"""Load an artifact and call it with checked inputs: `pt2kit.load(path)`.

Works on both kinds of `.pt2`: an exported program (run through `ExportedProgram.module()`)
and an AOTInductor package (checked against this machine first, then opened with
`AOTIModelPackageLoader` directly: see `pt2kit.runtime.loader`). Neither needs the model's
source code. Inputs are checked against the manifest, and for the artifact's device, before
every call. Nothing here imports sympy or Inductor (tests/test_load_runtime.py checks that).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch.utils import _pytree as pytree

from pt2kit.runtime.loader import AotiRunner, load_aoti
from pt2kit.runtime.calling import CallSignature
from pt2kit.artifact.contract import bind_inputs, check_devices, check_inputs
from pt2kit.errors import ArtifactError
from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import ArtifactKind, artifact_kind, load_program, read_manifest
from pt2kit.pytrees.trust import trusting
from pt2kit.pytrees.types import restore_registrations


class Artifact:
    """A loaded `.pt2`: call it like the original model.

    Attributes:
        path: where it was loaded from.
        kind: `ArtifactKind.PROGRAM` or `ArtifactKind.AOTI`.
        manifest: the pt2kit manifest (None for a `.pt2` pt2kit did not write: no input checks).
        device: where its tensor inputs must be (the package's device, or where a program's inputs
            were traced); None when a program's inputs were traced on several devices.
        notes: what loading could not restore exactly (a pytree type not importable here comes back as a stand-in).
    """

    def __init__(self, path: Path, kind: ArtifactKind, manifest: Manifest | None, fn: Callable, program=None,
                 device: torch.device | None = None, notes: Sequence[str] = ()):
        self.path = path
        self.notes = tuple(notes)
        self.kind = kind
        self.manifest = manifest
        self.program = program
        self.device = device
        self._fn = fn
        self._runner = fn if hasattr(fn, "run_flat") else None  # AotiRunner, or CudaGraphRunner around one
        try:
            self._in_spec = pytree.treespec_loads(manifest.in_spec) if manifest and manifest.in_spec else None
        except ArtifactError:
            raise
        except Exception as exc:  # torch raises several types for a spec it cannot read
            raise ArtifactError(f"the input spec in the manifest of `{path}` cannot be read ({str(exc)[:200]}); "
                                "export the model again") from None
        self.signature = CallSignature.of(manifest) if manifest is not None else None
        self._names = [s.name for s in manifest.inputs] if manifest else []

    @property
    def built_for(self) -> str:
        """The device type the artifact runs on: a package's, as its manifest or the package itself records it, or,
        for a program, where its weights live ("cpu" when it has none)."""
        aoti = (self.manifest.extra.get("aoti") or {}) if self.manifest else {}
        if aoti.get("device"):
            return str(aoti["device"])
        get_metadata = getattr(self._fn, "get_metadata", None)  # AOTICompiledModel
        if callable(get_metadata):
            return str(get_metadata().get("AOTI_DEVICE_KEY", "cpu"))
        for tensor in list(self.program.state_dict.values()) if self.program is not None else []:
            return tensor.device.type
        return "cpu"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Check the inputs against the manifest, then run. Inputs bind as the model's `forward` binds them
        (by position or by name), whichever split between args and kwargs the program was exported with."""
        if self.signature is not None:
            args, kwargs = self.signature.bind(args, kwargs)
        if self._runner is not None:  # AOTInductor: flatten once, check, run on the leaves
            leaves = self._runner.flatten(args, kwargs)
            self._check(leaves)
            return self._runner.run_flat(leaves)
        if self.manifest is not None or self.device is not None:
            self._check(pytree.tree_leaves((tuple(args), dict(kwargs))))
        return self._fn(*args, **kwargs)

    def _check(self, leaves: list[Any]) -> None:
        if self.manifest is not None:
            check_inputs(self.manifest, leaves)
        if self.device is not None:
            check_devices(leaves, self._names or [f"input {i}" for i in range(len(leaves))], self.device)

    def call_named(self, positional: list[Any], named: dict[str, Any], check: bool = True) -> Any:
        """Run with inputs given by manifest name (as `pt2kit run --input NAME=...` does).

        Tensors are moved to the artifact's device first: inputs made on the command line
        (or read from files) are CPU tensors, and a CUDA package must get them on its GPU.
        `check=False` skips the manifest check, for a caller that has checked these inputs already (the server).
        """
        positional, named = [self.to_device(v) for v in positional], {k: self.to_device(v) for k, v in named.items()}
        if self.manifest is None or self._in_spec is None:
            if named:
                raise ArtifactError(f"`{self.path}` has no pt2kit manifest, so inputs cannot be bound by name; pass them positionally")
            return self._fn(*positional)
        leaves = bind_inputs(self.manifest, positional, named)
        if check:
            self._check(leaves)
        args, kwargs = pytree.tree_unflatten(leaves, self._in_spec)
        return self._fn(*args, **kwargs)

    def to_device(self, value: Any) -> Any:
        """`value` on the artifact's device if it is a tensor (unchanged otherwise)."""
        if self.device is not None and isinstance(value, torch.Tensor):
            return value.to(self.device)
        return value

    def __repr__(self) -> str:
        device = f", device={self.device}" if self.device is not None else ""
        return f"Artifact({str(self.path)!r}, kind={self.kind.value}{device})"


def load(path: str | os.PathLike, *, device_index: int = -1, cuda_graphs: bool | None = None,
         graph_batch_sizes: Sequence[int] | None = None, threads: int | None = None,
         trust_imports: Sequence[str] = ()) -> Artifact:
    """Load a `.pt2` program or AOTInductor package for calling.

    Args:
        path: the artifact.
        device_index: CUDA device for an AOTInductor package built for CUDA.
        cuda_graphs: capture and replay CUDA graphs (a CUDA package only; see `pt2kit.runtime.cuda_graphs`).
            None: what the manifest's `load_options` say (`pt2kit tune` records its choice there), else off.
        graph_batch_sizes: with `cuda_graphs`, capture the manifest's batch dim at these sizes only and pad
            other sizes up (None: the manifest's `load_options["cuda_graph_batch"]`, else every shape as it comes).
        threads: `torch.set_num_threads(threads)` at load, process-wide (None: the manifest's `load_options["threads"]`,
            which `pt2kit tune --threads 1,2` records; 0: leave the thread count alone).
        trust_imports: modules (and the modules under them) the file may make pt2kit import for its pytree types,
            beyond those imported already and `transformers` (`pt2kit.pytrees.trust`). A `.pt2` program is data
            and reading it runs no code otherwise; an AOTInductor package holds native code that runs when it is
            loaded, so load only packages you trust.

    Raises:
        ArtifactError: missing, corrupt, or not loadable on this machine.
        UntrustedImportError: the file names a module to import that is neither imported nor trusted.

    Example:
        >>> model = pt2kit.load("model.pt2")
        >>> y = model(torch.randn(4, 16))
    """
    with trusting(trust_imports):  # the specs read below may name classes too (pt2kit.pytrees.spec_codec)
        return _load(Path(path), device_index, cuda_graphs, graph_batch_sizes, threads)


def _load(path: Path, device_index: int, cuda_graphs: bool | None, graph_batch_sizes: Sequence[int] | None,
          threads: int | None) -> Artifact:
    kind = artifact_kind(path)
    if kind is ArtifactKind.REGIONS:
        raise ArtifactError(f"`{path}` is a region archive (`pt2kit compile --partial`): it holds parts of a model, not a whole one; "
                            f"apply it to your model with `pt2kit.apply_regions(model, \"{path}\")`")
    manifest = read_manifest(path)
    notes: list[str] = []
    if manifest is not None:  # types the program's inputs/outputs use (e.g. a transformers cache)
        notes = restore_registrations(manifest.pytree_types, manifest.pytree_imports, f"`{path}`")
    if kind is ArtifactKind.PROGRAM:
        program = load_program(path)
        if manifest is not None and manifest.weights_sha256:
            _check_weights(path, program, manifest)
        return Artifact(path, kind, manifest, program.module(), program, _input_device(program), notes)
    options = (manifest.load_options if manifest is not None else None) or {}
    threads = options.get("threads") if threads is None else threads
    if threads:
        torch.set_num_threads(int(threads))
    graphs = bool(options.get("cuda_graphs", False)) if cuda_graphs is None else cuda_graphs
    runner = load_aoti(path, manifest, device_index, single_threaded=graphs)
    device = runner.device
    if graphs:
        runner = _with_cuda_graphs(path, runner, manifest, graph_batch_sizes, options.get("cuda_graph_batch"))
    return Artifact(path, kind, manifest, runner, device=device, notes=notes)


def _with_cuda_graphs(path: Path, runner: AotiRunner, manifest: Manifest | None, sizes, marked: dict | None):
    from pt2kit.runtime.cuda_graphs import CudaGraphRunner, batch_buckets

    device = str(((manifest.extra.get("aoti") if manifest else None) or {}).get("device", ""))
    if device != "cuda":
        raise ArtifactError(f"`{path.name}` is a {device or 'CPU'} package and CUDA graphs need a CUDA one; "
                            "load it with `cuda_graphs=False`, or build it with `pt2kit compile ... --device cuda`")
    batch = None
    if manifest is not None and (sizes or marked):
        dim = (marked or {}).get("dim") or next((d.name for d in manifest.dims if any(u.endswith(":0") for u in d.used_by)), None)
        if dim is None:
            raise ArtifactError(f"`{path.name}` has no dynamic batch dim to pad; load it without `graph_batch_sizes`")
        batch = batch_buckets(manifest, dim, sizes or marked["sizes"])
    return CudaGraphRunner(runner, manifest, batch=batch)


def _input_device(program) -> torch.device | None:
    """The one device the program's tensor inputs were traced on (None if several, or no tensor input)."""
    user_inputs = set(program.graph_signature.user_inputs)
    devices = {node.meta["val"].device for node in program.graph.nodes
               if node.op == "placeholder" and node.name in user_inputs and isinstance(node.meta.get("val"), torch.Tensor)}
    return devices.pop() if len(devices) == 1 else None


def _check_weights(path: Path, program, manifest: Manifest) -> None:
    from pt2kit.artifact.manifest import weights_summary

    if weights_summary(program)[2] != manifest.weights_sha256:
        raise ArtifactError(
            f"the weights in `{path}` do not match the checksum in its manifest; the file was modified or damaged, export it again"
        )

