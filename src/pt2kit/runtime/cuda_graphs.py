"""CUDA graph replay for AOTInductor packages: `pt2kit.load(path, cuda_graphs=True)`.

AOTInductor turns CUDA graphs off when it compiles ahead of time, so every call pays one kernel launch per
kernel. A package opened with AOTInductor's single-threaded runner can be captured by the caller instead:
the first call at an input shape runs the package twice to warm it, then captures one call into a
`torch.cuda.CUDAGraph`; later calls at that shape copy the inputs into the captured buffers, replay the
graph, and return clones of its outputs (never the graph's own buffers, which the next replay overwrites).

Shapes:
- each new shape is captured on first use, up to `max_graphs`; past that, a new shape runs uncaptured;
- a batch dim the manifest marks (`load_options["cuda_graph_batch"] = {"dim": NAME, "sizes": [...]}`) is
  captured only at those sizes: a batch between them is padded (its last row repeated) to the next captured
  size and the outputs cut back; a batch above the largest runs uncaptured. The first padded call is also run
  unpadded and the rows compared; if they differ (a model that mixes rows across the batch), padding is turned
  off for that runner and the reason kept in `notes`.

The shape, padding and bucket logic is plain tensor code, tested on CPU through the `capture` seam;
the capture itself needs CUDA. This module may import torch and pt2kit.artifact only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch.utils import _pytree as pytree

from pt2kit.artifact.manifest import Manifest
from pt2kit.errors import UsageError

# (flat tensor inputs) -> flat tensor outputs: one run of the package
RunFlat = Callable[[list[torch.Tensor]], list[torch.Tensor]]
# (run, static inputs, memory pool) -> (replay, static outputs)
Capture = Callable[[RunFlat, list[torch.Tensor], Any], tuple[Callable[[], None], list[torch.Tensor]]]

# padded rows must equal unpadded ones within this (other batch sizes may pick other GEMM kernels)
_ROW_TOLERANCE = {torch.float32: (1e-4, 1e-4), torch.float16: (5e-3, 5e-3), torch.bfloat16: (3e-2, 3e-2), torch.float64: (1e-8, 1e-8)}


@dataclass(frozen=True)
class BatchBuckets:
    """The batch sizes captured for one dynamic dim of the manifest; other sizes pad up to the next one.

    Attributes:
        symbol: the manifest's symbol for the dim (`s0`).
        name: the user's name for it (`batch`).
        sizes: the captured sizes, ascending.
        inputs: (input leaf index, dim) of every input dim that is this dim.
        outputs: (output leaf index, dim) of every output dim that is this dim (cut back after padding).
    """

    symbol: str
    name: str
    sizes: tuple[int, ...]
    inputs: tuple[tuple[int, int], ...]
    outputs: tuple[tuple[int, int], ...]

    def bucket_for(self, size: int) -> int | None:
        """The smallest captured size >= `size`, or None when `size` is above them all."""
        return next((s for s in self.sizes if s >= size), None)

    def size_of(self, leaves: Sequence[Any]) -> int:
        index, dim = self.inputs[0]
        return int(leaves[index].shape[dim])

    def to_json(self) -> dict:
        return {"dim": self.name, "sizes": list(self.sizes)}


def batch_buckets(manifest: Manifest, dim: str, sizes: Sequence[int]) -> BatchBuckets:
    """Resolve `dim` (the user's name or torch's symbol) in `manifest` and check `sizes` against its range.

    Raises:
        UsageError: no such dynamic dim, it is not a plain input dim, or a size is outside its range.
    """
    found = next((d for d in manifest.dims if dim in (d.name, d.symbol)), None)
    if found is None:
        names = ", ".join(f"`{d.name}`" for d in manifest.dims) or "none"
        raise UsageError(f"cuda graph batch dim `{dim}` is not a dynamic dim of this artifact (its dynamic dims: {names}); "
                         "pass one of them, or export with `--dynamic x:0=batch[1,64]`")
    clean = tuple(sorted({int(s) for s in sizes}))
    bad = [s for s in clean if s < found.min or (found.max is not None and s > found.max)]
    if not clean or bad:
        high = "inf" if found.max is None else found.max
        raise UsageError(f"cuda graph batch sizes {list(bad or clean)} are outside `{found.name}` [{found.min}, {high}]; "
                         f"pass sizes within that range, e.g. `[{found.min}, {found.max or found.min}]`")
    inputs = tuple((i, d) for i, leaf in enumerate(manifest.inputs) for d, s in enumerate(leaf.shape) if s == found.symbol)
    outputs = tuple((i, d) for i, leaf in enumerate(manifest.outputs) for d, s in enumerate(leaf.shape) if s == found.symbol)
    if not inputs:
        raise UsageError(f"dynamic dim `{found.name}` is not a whole input dim (only derived from one); choose another dim")
    return BatchBuckets(found.symbol, found.name, clean, inputs, outputs)


def pad_leaves(leaves: Sequence[Any], buckets: BatchBuckets, size: int) -> list[Any]:
    """`leaves` with every batch dim grown to `size` by repeating its last row (always a valid input)."""
    out = list(leaves)
    for index, dim in buckets.inputs:
        t = out[index]
        extra = size - t.shape[dim]
        if extra > 0:
            last = t.narrow(dim, t.shape[dim] - 1, 1)
            out[index] = torch.cat([t, last.expand(*[extra if d == dim else -1 for d in range(t.dim())])], dim=dim)
    return out


def cut_outputs(outputs: Sequence[Any], buckets: BatchBuckets, size: int) -> list[Any]:
    """`outputs` with every batch dim cut back to `size` (copies, so no padded storage is kept alive)."""
    out = list(outputs)
    for index, dim in buckets.outputs:
        if isinstance(out[index], torch.Tensor):
            out[index] = out[index].narrow(dim, 0, size).clone()
    return out


def shape_key(tensors: Sequence[torch.Tensor]) -> tuple:
    """What a captured graph is specialized to: every input's shape, dtype and device."""
    return tuple((tuple(t.shape), t.dtype, str(t.device)) for t in tensors)


def capture_cuda_graph(run: RunFlat, static: list[torch.Tensor], pool: Any) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """Warm `run` up on a side stream, then capture one call into a CUDA graph sharing `pool`."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):  # the first run loads kernels and creates handles: never inside a capture
            run(list(static))
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        outputs = run(list(static))
    return graph.replay, list(outputs)


@dataclass
class _Graph:
    static: list[torch.Tensor]
    outputs: list[torch.Tensor]
    replay: Callable[[], None]


class CudaGraphRunner:
    """An AOTInductor runner whose calls replay CUDA graphs (see the module docstring).

    Args:
        runner: an `AotiRunner` opened with `single_threaded=True`.
        manifest: the artifact's manifest (finds the batch dim), or None.
        batch: captured sizes of one batch dim (`batch_buckets`), or None to capture every shape as it comes.
        max_graphs: at most this many graphs are captured; later new shapes run uncaptured.
        capture: the capture step (a seam: tests on CPU pass one that re-runs instead of replaying).
    """

    def __init__(self, runner, manifest: Manifest | None, *, batch: BatchBuckets | None = None, max_graphs: int = 16,
                 capture: Capture = capture_cuda_graph):
        self.runner = runner
        self.manifest = manifest
        self.batch = batch
        self.max_graphs = max_graphs
        self.notes: list[str] = []
        self._capture = capture
        self._graphs: dict[tuple, _Graph] = {}
        self._pool = None
        self._padding_checked = False
        self.captures = self.replays = self.uncaptured = 0

    def flatten(self, args: tuple, kwargs: dict) -> list[Any]:
        return self.runner.flatten(args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.run_flat(self.flatten(args, kwargs))

    def _run(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(self.runner.loader.boxed_run(list(tensors)))

    def run_flat(self, leaves: list[Any]) -> Any:
        """Run on the flat input leaves (manifest order, constants included) through a graph where one fits."""
        flat = self._flat(leaves)
        return pytree.tree_unflatten(flat, self.runner.out_spec)

    def _flat(self, leaves: list[Any]) -> list[Any]:
        if self.batch is not None and self.batch.inputs[-1][0] < len(leaves):
            size = self.batch.size_of(leaves)
            if size not in self.batch.sizes:
                bucket = self.batch.bucket_for(size)
                if bucket is None or not self._padding_ok(leaves, size, bucket):
                    return self._uncaptured(leaves)
                padded = self._replay(pad_leaves(leaves, self.batch, bucket))
                return cut_outputs(padded, self.batch, size)
        return self._replay(leaves)

    def _tensors(self, leaves: list[Any]) -> list[torch.Tensor]:
        return [x for x in leaves if isinstance(x, torch.Tensor)]  # constants are baked into the package

    def _uncaptured(self, leaves: list[Any]) -> list[torch.Tensor]:
        self.uncaptured += 1
        return self._run(self._tensors(leaves))

    def _replay(self, leaves: list[Any]) -> list[torch.Tensor]:
        tensors = self._tensors(leaves)
        key = shape_key(tensors)
        graph = self._graphs.get(key)
        if graph is None:
            if len(self._graphs) >= self.max_graphs:
                return self._uncaptured(leaves)
            graph = self._graphs[key] = self._new_graph(tensors)
        for buffer, value in zip(graph.static, tensors):
            buffer.copy_(value)
        graph.replay()  # also right after capture: capturing records the kernels without running them
        self.replays += 1
        return [o.clone() if isinstance(o, torch.Tensor) else o for o in graph.outputs]

    def _new_graph(self, tensors: list[torch.Tensor]) -> _Graph:
        if self._pool is None and self._capture is capture_cuda_graph:
            self._pool = torch.cuda.graph_pool_handle()  # one pool: graphs replay one at a time, so they share it
        static = [t.detach().clone(memory_format=torch.contiguous_format) for t in tensors]
        replay, outputs = self._capture(self._run, static, self._pool)
        self.captures += 1
        return _Graph(static, outputs, replay)

    def _padding_ok(self, leaves: list[Any], size: int, bucket: int) -> bool:
        """The first padded call is checked against an unpadded run; a mismatch turns padding off."""
        if self._padding_checked:
            return self.batch is not None
        self._padding_checked = True
        padded = cut_outputs(self._replay(pad_leaves(leaves, self.batch, bucket)), self.batch, size)
        plain = self._run(self._tensors(leaves))
        bad = [i for i, (a, b) in enumerate(zip(padded, plain)) if not _close(a, b)]
        if bad:
            note = (f"padding `{self.batch.name}` from {size} to {bucket} changed output {bad[0]}: this model mixes rows across "
                    f"the batch, so batch sizes outside {list(self.batch.sizes)} run uncaptured")
            self.notes.append(note)
            warnings.warn(f"pt2kit: {note}", RuntimeWarning, stacklevel=4)
            self.batch = None
            return False
        return True

    def stats(self) -> dict[str, int]:
        """Counts of captures, replays and uncaptured runs so far (how the shapes were served)."""
        return {"graphs": len(self._graphs), "captures": self.captures, "replays": self.replays, "uncaptured": self.uncaptured}


def _close(a: Any, b: Any) -> bool:
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return a == b
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    atol, rtol = _ROW_TOLERANCE.get(a.dtype, (1e-4, 1e-4))
    return bool(torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))
