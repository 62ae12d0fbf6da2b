"""One served model: a loaded artifact, its batch dim, and `run_batch`, which runs many requests as one call.

`run_batch` stacks the requests' inputs along the batch dim the manifest records, calls the artifact once and
splits every output back. It is synchronous and knows nothing of HTTP or queues, so any backend (the asyncio
batcher here, Ray Serve's `@serve.batch`) can drive it.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils import _pytree as pytree

from pt2kit import progress
from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import ArtifactKind
from pt2kit.runtime.loaded import Artifact, load
from pt2kit.artifact.size_expr import parse_size_cached
from pt2kit.errors import ArtifactError, UsageError, first_line
from pt2kit.serve.protocol import InferRequest, tensor_inputs, tensor_outputs


@dataclass(frozen=True)
class BatchDim:
    """The dim every input shares at one position: requests are stacked along it.

    Attributes:
        name: the user's name for it (`batch`).
        symbol: torch's symbol in the manifest (`s0`).
        position: its index in every input's shape.
        outputs: output name -> its index in that output's shape.
        min, max: its range (max None: unbounded).
    """

    name: str
    symbol: str
    position: int
    outputs: dict[str, int]
    min: int
    max: int | None


def group_key(batch_dim: BatchDim | None, tensors: dict[str, torch.Tensor]) -> tuple:
    """Inputs with equal keys may share a batch: every size but the batch dim's agrees."""
    position = batch_dim.position if batch_dim else None
    return tuple((name, tuple(s for d, s in enumerate(t.shape) if d != position)) for name, t in tensors.items())


def find_batch_dim(manifest: Manifest) -> tuple[BatchDim | None, str]:
    """The manifest's batch dim, or None and the reason there is none (said at start-up).

    Of the dynamic dims that every input and output carries, the one nearest the front of the shapes (a decoder's
    `batch` at dim 0 rather than its `seq` at dim 1), whatever order torch named the symbols in.
    """
    inputs, outputs = tensor_inputs(manifest), tensor_outputs(manifest)
    if not inputs:
        return None, "the model takes no tensor inputs"
    reasons, found = [], []
    for dim in manifest.dims:
        positions = {i.name: [d for d, s in enumerate(i.shape) if s == dim.symbol] for i in inputs}
        common = set.intersection(*(set(p) for p in positions.values()))
        if not common:
            reasons.append(f"`{dim.name}` is not in every input at one position")
            continue
        out_positions = {}
        for out in outputs:
            where = [d for d, s in enumerate(out.shape) if s == dim.symbol]
            if where:
                out_positions[out.name] = where[0]
        if len(out_positions) != len(outputs):
            missing = next(o.name for o in outputs if o.name not in out_positions)
            reasons.append(f"output `{missing}` does not carry `{dim.name}`, so a batch cannot be split back")
            continue
        found.append(BatchDim(dim.name, dim.symbol, min(common), out_positions, dim.min, dim.max))
    if found:
        return min(found, key=lambda d: d.position), ""
    if not manifest.dims:
        return None, "the model has no dynamic dim (export it with e.g. `--dynamic x:0=batch[1,64]` to batch requests)"
    return None, "; ".join(reasons)


class ModelService:
    """A model the server serves: the loaded artifact, its name and batch dim, and `run_batch`.

    Args:
        name: the name clients use (`/v2/models/{name}`).
        artifact: a `pt2kit.load`ed artifact with a manifest.
        device: where inputs go (`cpu` or `cuda`); outputs come back on the CPU.
        max_batch_size: the most batch rows one call may take; capped by the batch dim's range, 1 without one.

    Raises:
        ArtifactError: the artifact has no pt2kit manifest (its inputs could not be checked).
    """

    def __init__(self, name: str, artifact: Artifact, *, device: str = "cpu", max_batch_size: int = 32):
        if artifact.manifest is None:
            raise ArtifactError(f"`{artifact.path}` has no pt2kit manifest, so its inputs cannot be checked; export it with `pt2kit export`")
        if max_batch_size < 1:
            raise UsageError(f"max batch size must be at least 1, got {max_batch_size}; pass `--max-batch-size 1` to turn batching off")
        self.name = name
        self.artifact = artifact
        self.manifest: Manifest = artifact.manifest
        self.device = torch.device(device)
        self.batch_dim, self.no_batch_reason = find_batch_dim(self.manifest)
        limit = self.batch_dim.max if self.batch_dim and self.batch_dim.max is not None else max_batch_size
        self.max_batch_size = min(max_batch_size, limit) if self.batch_dim else 1
        self.ready = False
        self.warm_up_error = ""  # why the warm-up failed ("" when it did not): such a model is never ready
        self.last_phase_ns = (0, 0, 0)
        self._pinned: dict[tuple, torch.Tensor] = {}

    @property
    def platform(self) -> str:
        return "pt2kit_aoti" if self.artifact.kind is ArtifactKind.AOTI else "pt2kit_program"

    def describe(self) -> str:
        """One line for start-up: the model, its artifact, and how it batches."""
        if self.batch_dim is None:
            how = f"no batching (max batch 1): {self.no_batch_reason}"
        else:
            how = f"batches along `{self.batch_dim.name}` (dim {self.batch_dim.position}) up to {self.max_batch_size}"
        return f"model `{self.name}` from {self.artifact.path} ({self.artifact.kind.value}, {self.device.type}): {how}"

    def group_key(self, request: InferRequest) -> tuple:
        """Requests with equal keys may share a batch: every size but the batch dim's agrees."""
        return self.group_key_of(request.tensors)

    def group_key_of(self, tensors: dict[str, torch.Tensor]) -> tuple:
        return group_key(self.batch_dim, tensors)

    def run(self, tensors: dict[str, torch.Tensor], checked: bool = False) -> dict[str, torch.Tensor]:
        """Run once on named inputs; outputs by manifest name. `pt2kit.load`'s contract checks the inputs again
        unless `checked` says the caller did (the engine's requests were checked by the front end)."""
        if self.device.type != "cpu":
            tensors = {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}
        with torch.inference_mode():
            result = self.artifact.call_named([], tensors, check=not checked)
        flat = pytree.tree_flatten_with_path(result)[0]
        return {"output" + pytree.keystr(path): value for path, value in flat if isinstance(value, torch.Tensor)}

    def run_batch(self, requests: Sequence[InferRequest]) -> list[dict[str, torch.Tensor]]:
        """Run `requests` as one call: stack along the batch dim, run, split every output back.

        The requests must share `group_key` and their batches must add up to at most `max_batch_size`. The nanoseconds
        of its three phases (stack and copy in, the call, copy out and split) are left in `last_phase_ns`; on CUDA the
        call's phase ends when the device is done.
        """
        start = time.perf_counter_ns()
        if len(requests) == 1:
            inputs = requests[0].tensors
        else:
            inputs = {name: torch.cat([r.tensors[name] for r in requests], dim=self.batch_dim.position) for name in requests[0].tensors}
        if self.device.type != "cpu":
            inputs = {k: self._staged(k, v).to(self.device, non_blocking=True) for k, v in inputs.items()}
        copied = time.perf_counter_ns()
        outputs = self.run(inputs, checked=True)  # parse_infer_request checked every input against the manifest
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        called = time.perf_counter_ns()
        outputs = self._to_cpu(outputs)
        if len(requests) == 1:
            results = [outputs]
        else:
            sizes = [r.batch for r in requests]
            pieces = {name: torch.split(value, sizes, dim=self.batch_dim.outputs[name]) for name, value in outputs.items()}
            results = [{name: parts[i] for name, parts in pieces.items()} for i in range(len(requests))]
        self.last_phase_ns = (copied - start, called - copied, time.perf_counter_ns() - called)
        return results

    def _staged(self, name: str, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` copied into page-locked memory, so the copy to the GPU is one DMA without a staging copy."""
        if not tensor.dim():
            return tensor
        key = (name, tensor.dtype, tuple(tensor.shape[1:]))
        buffer = self._pinned.get(key)
        if buffer is None or buffer.shape[0] < tensor.shape[0]:
            if len(self._pinned) >= 16:  # a bounded cache: many distinct shapes fall back to pageable copies
                return tensor
            buffer = torch.empty((max(self.max_batch_size, tensor.shape[0]), *tensor.shape[1:]), dtype=tensor.dtype, pin_memory=True)
            self._pinned[key] = buffer
        # the copy to the device is synchronised at the end of run_batch, before this buffer is written again
        view = buffer[: tensor.shape[0]]
        view.copy_(tensor)
        return view

    @staticmethod
    def _to_cpu(outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v if v.device.type == "cpu" else v.cpu() for k, v in outputs.items()}

    def warm_up(self) -> None:
        """Run zeros at the smallest sizes, and at the largest batch, so the first request pays no first-call cost."""
        batches = sorted({1 if not self.batch_dim else max(self.batch_dim.min, 1), self.max_batch_size})
        for batch in batches:
            self.run(self.example_inputs(batch))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.ready = True

    def try_warm_up(self) -> bool:
        """`warm_up`, with a failure recorded rather than raised: such a model is not ready, its requests get 503
        with the reason (`warm_up_error`), and the server goes on serving the others. True when it warmed up."""
        try:
            self.warm_up()
        except Exception as exc:
            self.warm_up_error = first_line(exc, limit=200)
            progress.info(f"warm-up of `{self.name}` failed ({self.warm_up_error}); it is not ready and answers 503")
            return False
        return True

    def example_inputs(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """Zeros that fit the manifest: each dynamic dim at its minimum (the batch dim at `batch`)."""
        sizes = {d.symbol: max(d.min, 1) for d in self.manifest.dims}
        if self.batch_dim:
            sizes[self.batch_dim.symbol] = batch
        tensors = {}
        for spec in tensor_inputs(self.manifest):
            shape = [s if isinstance(s, int) else _evaluate(s, sizes) for s in spec.shape]
            tensors[spec.name] = torch.zeros(shape, dtype=getattr(torch, spec.dtype))  # a dtype name checked when the manifest was read
        return tensors


def _evaluate(expr: str, sizes: dict[str, int]) -> int:
    value = parse_size_cached(expr).evaluate(sizes)  # checked grammar: a manifest is data, never evaluated as Python
    if value is None:
        raise ArtifactError(f"size `{expr}` in the manifest uses a dim the manifest does not declare; export the model again")
    return value


def model_name(path: str | os.PathLike) -> str:
    """A model's default name: the file name without its suffixes (`mlp.aoti.pt2` -> `mlp`)."""
    return Path(path).name.split(".")[0] or Path(path).name


def load_services(artifacts: Sequence[str | os.PathLike], *, names: Sequence[str] | None = None, device: str | None = None,
                  max_batch_size: int = 32, load_options: dict[str, Any] | None = None) -> list[ModelService]:
    """Load each artifact with `pt2kit.load` (inputs checked against its manifest) as a `ModelService`.

    Args:
        artifacts: AOTInductor packages or `.pt2` programs.
        names: one name per artifact (default: each file's name without its suffixes).
        device: `cpu` or `cuda` (default: the device a package was compiled for; programs run on the CPU).
        max_batch_size: the most rows one call takes.
        load_options: keyword arguments passed through to `pt2kit.load`.

    Raises:
        UsageError: two models would share a name, or a program is asked to run on CUDA.
        ArtifactError: an artifact is missing, corrupt, has no manifest, or does not fit this machine.
    """
    names = model_names(artifacts, names)
    services = []
    for name, path in zip(names, artifacts):
        artifact = load(path, **(load_options or {}))
        built_for = artifact.built_for
        chosen = device or built_for
        if chosen != built_for:
            if artifact.kind is ArtifactKind.PROGRAM:
                raise UsageError(f"`{path}` is a .pt2 program, served on the CPU; for CUDA compile it first: "
                                 f"`pt2kit compile {path} -o {name}.cuda.aoti.pt2 --device cuda`")
            raise UsageError(f"`{path}` was compiled for {built_for}, not {chosen}; pass `--device {built_for}` or compile it for {chosen}")
        services.append(ModelService(name, artifact, device=chosen, max_batch_size=max_batch_size))
    return services


def model_names(artifacts: Sequence[str | os.PathLike], names: Sequence[str] | None = None) -> list[str]:
    """The name each artifact is served under (`names`, or each file's name), checked before anything loads.

    Raises:
        UsageError: a name the URLs cannot carry, two models with one name, or not one name per artifact.
    """
    names = list(names) if names else [model_name(p) for p in artifacts]
    if len(names) != len(artifacts):
        raise UsageError(f"got {len(names)} names for {len(artifacts)} artifacts; give one `--name` only with one artifact")
    seen = {}
    for name, path in zip(names, artifacts):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise UsageError(f"model name `{name}` may hold only letters, digits, `_`, `.` and `-`; pass `--name NAME`")
        if name in seen:
            raise UsageError(f"`{seen[name]}` and `{path}` would both be served as `{name}`; rename one file or serve them separately")
        seen[name] = path
    return names
