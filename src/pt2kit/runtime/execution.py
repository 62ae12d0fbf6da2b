"""`pt2kit run`: call an artifact on inputs from the command line and summarize or save the outputs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils import _pytree as pytree

from pt2kit import progress
from pt2kit.target.inputs import InputSpec, dtype_name, resolve_inputs
from pt2kit.artifact.package import atomic_path
from pt2kit.runtime.loaded import load


@dataclass(frozen=True)
class OutputSummary:
    """One output leaf: its name, dtype and shape, and a few statistics."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    mean: float | None
    min: float | None
    max: float | None

    def __str__(self) -> str:
        stats = f"  mean {self.mean:.6g}  min {self.min:.6g}  max {self.max:.6g}" if self.mean is not None else ""
        return f"{self.name}: {self.dtype}[{', '.join(map(str, self.shape))}]{stats}"


@dataclass(frozen=True)
class RunResult:
    """The outputs of one run, and where they were written (if `--out`)."""

    artifact: Path
    outputs: tuple[OutputSummary, ...]
    seconds: float
    written: Path | None = None
    notes: tuple[str, ...] = ()  # what loading could not restore exactly (a pytree type came back as a stand-in)

    def __str__(self) -> str:
        lines = [f"ran {self.artifact} in {self.seconds * 1000:.2f} ms"] + [f"  {o}" for o in self.outputs]
        if self.written:
            lines.append(f"  outputs written to {self.written}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "artifact": str(self.artifact), "seconds": self.seconds, "written": str(self.written) if self.written else None,
            "notes": list(self.notes),
            "outputs": [o.__dict__ | {"shape": list(o.shape)} for o in self.outputs],
        }


def named_outputs(outputs) -> dict[str, torch.Tensor]:
    """Flatten an output pytree to {"output[0]": tensor, "output['logits']": tensor, ...}."""
    flat = pytree.tree_flatten_with_path(outputs)[0]
    return {"output" + pytree.keystr(path): value for path, value in flat if isinstance(value, torch.Tensor)}


def run_artifact(path: str | os.PathLike, inputs: list[InputSpec], *, out: str | os.PathLike | None = None, seed: int = 0,
                 cuda_graphs: bool | None = None) -> RunResult:
    """Load `path`, check and bind `inputs` by the manifest, run once, summarize the outputs (`pt2kit run`).

    Args:
        path: a `.pt2` program or AOTInductor package written by pt2kit.
        inputs: parsed `--input` specs (`parse_input("x=float32[8,3,32,32]")`), bound by the manifest's names.
        out: also write every output leaf to this `.safetensors` file (atomically).
        seed: seed for random inputs.
        cuda_graphs: passed to `pt2kit.load` (None: the manifest's load options).

    Returns:
        A `RunResult`: each output's dtype, shape and statistics, the run time, the file written.

    Raises:
        ArtifactError: the artifact cannot be loaded.
        InputMismatchError: an input breaks the manifest's contract.

    Example:
        >>> result = run_artifact("out/cnn.pt2", [parse_input("images=float32[8,3,32,32]")], out="logits.safetensors")
        >>> print(result)
    """
    with progress.stage("load"):
        artifact = load(path, cuda_graphs=cuda_graphs)
    positional, named = resolve_inputs(inputs, seed)
    start = time.perf_counter()
    with torch.no_grad():
        outputs = artifact.call_named(positional, named)
    seconds = time.perf_counter() - start
    tensors = named_outputs(outputs)
    summaries = tuple(_summarize(name, t) for name, t in tensors.items())
    written = None
    if out is not None:
        from safetensors.torch import save_file

        with atomic_path(out) as tmp:
            save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
        written = Path(out)
    return RunResult(Path(path), summaries, seconds, written, artifact.notes)


def _summarize(name: str, t: torch.Tensor) -> OutputSummary:
    stats = (None, None, None)
    if t.numel() and (t.dtype.is_floating_point or not t.dtype.is_complex):
        f = t.detach().float()
        stats = (f.mean().item(), f.min().item(), f.max().item())
    return OutputSummary(name, dtype_name(t.dtype), tuple(t.shape), *stats)
