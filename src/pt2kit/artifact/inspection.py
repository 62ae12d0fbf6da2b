"""`pt2kit inspect`: what an artifact takes and returns, what it holds, and what it computes."""

from __future__ import annotations

import collections
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from pt2kit.artifact.manifest import Manifest
from pt2kit.artifact.package import ArtifactKind, artifact_kind, load_program, read_manifest
from pt2kit.pytrees.types import restore_registrations
from pt2kit.tables import render_table


@dataclass(frozen=True)
class PackageLayout:
    """Where an AOTInductor package keeps its code and its weights, read from the archive's entries."""

    so_bytes: int  # the shared libraries (code; and the weights unless they are outside)
    blob_bytes: int  # `*_weights.blob`: the weights outside the `.so` (0 when they are inside)
    blob_name: str = ""
    tensor_files: int = 0  # `--external-weights tensors`: one `data/weights/weight_N` per weight storage
    tensor_bytes: int = 0

    @property
    def external_weights(self) -> bool:
        return bool(self.blob_name) or self.tensor_files > 0

    @property
    def weights_layout(self) -> str:
        return "tensors" if self.tensor_files else "blob" if self.blob_name else "so"

    def describe(self) -> str:
        if self.tensor_files:
            return (f".so {self.so_bytes / 1e6:.2f} MB (code); weights outside it, one file per tensor in data/weights/ "
                    f"({self.tensor_files} files, {self.tensor_bytes / 1e6:.2f} MB, mapped at load by pt2kit.load)")
        if self.blob_name:
            return (f".so {self.so_bytes / 1e6:.2f} MB (code); weights outside it in {self.blob_name} "
                    f"({self.blob_bytes / 1e6:.2f} MB, read at load)")
        return f".so {self.so_bytes / 1e6:.2f} MB (code and weights inside)"

    def to_json(self) -> dict:
        return {"so_bytes": self.so_bytes, "blob_bytes": self.blob_bytes, "blob_name": self.blob_name,
                "tensor_files": self.tensor_files, "tensor_bytes": self.tensor_bytes,
                "external_weights": self.external_weights, "weights_layout": self.weights_layout}


def package_layout(path: str | os.PathLike) -> PackageLayout:
    """The sizes of an AOTInductor package's `.so` files and weights, in a blob or per tensor (no extraction)."""
    with zipfile.ZipFile(path) as zf:
        entries = zf.infolist()
    infos = [i for i in entries if "/data/aotinductor/" in i.filename]
    blobs = [i for i in infos if i.filename.endswith("_weights.blob")]
    tensors = [i for i in entries if "/data/weights/" in i.filename]
    return PackageLayout(sum(i.file_size for i in infos if i.filename.endswith(".so")), sum(i.file_size for i in blobs),
                         ", ".join(i.filename.rsplit("/", 1)[-1] for i in blobs), len(tensors), sum(i.file_size for i in tensors))


@dataclass(frozen=True)
class Inspection:
    """The description of one artifact. `ops` maps operator name -> count (programs only)."""

    path: Path
    kind: ArtifactKind
    size_bytes: int
    manifest: Manifest | None
    signature: str = ""
    ops: dict[str, int] = field(default_factory=dict)
    graph: str | None = None
    load_notes: tuple[str, ...] = ()  # what reading the program could not restore exactly (a stand-in type)
    layout: PackageLayout | None = None  # AOTInductor packages only

    @property
    def trust(self) -> str:
        """What loading this kind of file runs: an AOTInductor package holds native code, a program is data."""
        if self.kind is ArtifactKind.PROGRAM:
            return "a .pt2 program is data: reading it (inspect, run, verify, load) runs no code from the file"
        if self.kind is ArtifactKind.REGIONS:
            return ("a region archive holds AOTInductor packages, i.e. native code that runs when they are loaded "
                    "(pt2kit.apply_regions); load only archives you trust (inspect does not load them)")
        return ("an AOTInductor package holds native code: its .so runs when the package is loaded (run, verify, serve, "
                "pt2kit.load), as any shared library does; load only packages you trust (inspect does not load it)")

    def __str__(self) -> str:
        lines = [f"{self.path}  ({self.kind.value}, {self.size_bytes / 1e6:.2f} MB)", f"trust   {self.trust}"]
        if self.signature:
            lines.append(f"signature: {self.signature}")
        if self.layout is not None:
            lines.append(f"layout: {self.layout.describe()}")
        m = self.manifest
        if m is None:
            lines.append("manifest: none (not written by pt2kit; inputs are not checked at run time)")
        else:
            lines += [f"input   {m.describe(leaf)}" for leaf in m.inputs]
            lines += [f"output  {m.describe(leaf)}" for leaf in m.outputs]
            lines += [f"dim     {d.describe()}" for d in m.dims] or ["dims    all static"]
            lines.append(f"weights {m.parameter_count:,} elements, {m.parameter_bytes / 1e6:.2f} MB, sha256 {m.weights_sha256[:16]}...")
            lines.append(f"built   torch {m.torch_version}, pt2kit {m.pt2kit_version}, capture {m.capture_mode}, {m.created}")
            if m.target:
                lines.append(f"target  {m.target}")
            lines += _precision_lines(m)
            lines += [f"note    {n}" for n in m.notes]
        lines += [f"note    {n}" for n in self.load_notes]
        if self.ops:
            lines.append("operators:")
            lines.append(render_table(["operator", "count"], self.ops.items(), show_header=False, indent=2))
        if self.graph:
            lines += ["graph:", self.graph]
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "path": str(self.path), "kind": self.kind.value, "size_bytes": self.size_bytes, "trust": self.trust,
            "native_code": self.kind is not ArtifactKind.PROGRAM,
            "signature": self.signature, "manifest": self.manifest.to_json() if self.manifest else None,
            "ops": self.ops, "graph": self.graph, "load_notes": list(self.load_notes),
            "layout": self.layout.to_json() if self.layout else None,
        }


def inspect_artifact(path: str | os.PathLike, *, graph: bool = False) -> Inspection:
    """Describe a `.pt2` program or AOTInductor package.

    Raises:
        ArtifactError: missing or corrupt file.

    Example:
        >>> print(inspect_artifact("model.pt2"))
    """
    path = Path(path)
    kind = artifact_kind(path)
    manifest = read_manifest(path)
    signature, ops, text, notes = "", {}, None, []
    if kind is ArtifactKind.PROGRAM:
        if manifest is not None:  # load_program repeats these quietly; here their notes are kept for the report
            notes = restore_registrations(manifest.pytree_types, manifest.pytree_imports, f"`{path}`")
        ep = load_program(path)
        counts = collections.Counter(
            str(node.target) for node in ep.graph.nodes if node.op == "call_function"
        )
        ops = dict(counts.most_common())
        describe = lambda leaf: manifest.describe(leaf) if leaf.kind == "tensor" else f"{leaf.name}={leaf.value!r}"  # noqa: E731
        signature = _signature(manifest, describe) if manifest else str(ep.call_spec.in_spec).replace("\n", " ")
        if manifest is None:
            manifest = _derived_manifest(ep)
        text = ep.graph_module.print_readable(print_output=False) if graph else None
    elif manifest is not None:
        signature = _signature(manifest, lambda leaf: leaf.name)
    layout = package_layout(path) if kind is ArtifactKind.AOTI else None
    return Inspection(path, kind, path.stat().st_size, manifest, signature, ops, text, tuple(notes), layout)



def _precision_lines(m: Manifest) -> list[str]:
    """What the package computes in, when it is not the program's own dtype: `--dtype`, `--quantize`."""
    lines = []
    dtype, io = m.extra.get("dtype"), m.extra.get("io")
    if dtype:
        how = "inputs and outputs in the model's dtypes, cast inside" if io == "model" else f"inputs and outputs in {dtype}"
        lines.append(f"compute {dtype} ({how})")
    q = m.extra.get("quantization")
    if isinstance(q, dict):
        modules = [str(x) for x in q.get("modules", [])] if isinstance(q.get("modules"), list) else []
        shown = ", ".join(modules[:8]) + (f", ... ({len(modules) - 8} more)" if len(modules) > 8 else "")
        lines.append(f"quant   {q.get('scheme')} ({q.get('method')}, torchao {q.get('torchao_version')}): "
                     f"{len(modules)} linear layer(s): {shown}")
    return lines


def _signature(manifest: Manifest, describe) -> str:
    """`forward(x: float32[batch, 16], *, mask: ...)`: a `*` before the inputs the program takes by keyword."""
    parts: list[str] = []
    for leaf in manifest.inputs:
        if leaf.keyword and "*" not in parts:
            parts.append("*")
        parts.append(describe(leaf))
    return f"forward({', '.join(parts)})"


def _derived_manifest(ep) -> Manifest:
    from pt2kit.artifact.manifest import build_manifest

    return build_manifest(ep, parameters=[], notes=["derived by pt2kit inspect: this file carries no pt2kit manifest"])
