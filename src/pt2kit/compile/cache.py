"""The build cache: finished AOTInductor packages keyed by everything that shapes them.

The key is a SHA-256 over the serialized program (graph, signature, ranges; without the
weights; provenance metadata such as file paths normalised, so the same model exported by
another process or from another folder gives the same key), the weights' own SHA-256, the
Inductor settings, the device, the dtype and the torch and pt2kit versions. An entry is `<key>.aoti.pt2` plus `<key>.json` (how long the
original build took). Both are written atomically, so a build killed midway never leaves a
half entry that a later build would trust. The folder is `~/.cache/pt2kit` unless
`PT2KIT_CACHE_DIR` says otherwise; deleting it at any time is safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pt2kit.runtime.loader import default_cache_dir
from pt2kit.artifact.package import atomic_path


def program_digest(ep: torch.export.ExportedProgram, weights_sha256: str) -> str:
    """SHA-256 of the serialized program (weights excluded), in canonical form, combined with the weights' SHA-256.

    The canonical form (`canonical_program`) drops what records where the program came from rather than what
    it computes, so the same model exported by another process, from another folder, hits the cache.
    """
    from torch._export.serde.serialize import serialize

    try:
        artifact = serialize(ep, serialize_state_dict=False, serialize_constants=False, serialize_example_inputs=False)
    except TypeError:  # older torch: no switches; the pickled weights are in the digest too (still deterministic)
        artifact = serialize(ep)
    # a program re-exported through a wrapper (`--dtype`'s casts, `--quantize`) names the inner GraphModule's
    # generated code `<eval_with_key>.N`, with N counting up in each process
    digest = hashlib.sha256(re.sub(rb"<eval_with_key>\.\d+", b"<eval_with_key>", canonical_program(artifact.exported_program)))
    digest.update(weights_sha256.encode())
    return digest.hexdigest()


# what a node's metadata says about where it came from, not what it computes:
# - `stack_trace`: the user's file paths and line numbers (another clone, an edited comment);
# - in `nn_module_stack`, the module pt2kit imported the target file as (`pt2kit_target_<name>_<digest>`,
#   named after the file's path) before each class name;
# - in `from_node` (node provenance), `graph_id`: a Python object id, different in every process.
_TARGET_MODULE = re.compile(r"\bpt2kit_target_\w*?(?=\.)")
_GRAPH_ID = re.compile(r'("graph_id"\s*:\s*)\d+')


def canonical_program(serialized: bytes) -> bytes:
    """The serialized program (`model.json`'s bytes) with its provenance metadata normalised (see above).

    Falls back to the bytes as they are when they are not JSON (a format this torch does not write).
    """
    try:
        program = json.loads(serialized)
    except ValueError:
        return serialized
    return json.dumps(_normalised(program), sort_keys=True, separators=(",", ":")).encode()


def _normalised(value: Any) -> Any:
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _normalised(v) for k, v in value.items()}
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k != "stack_trace"}
        if isinstance(meta.get("nn_module_stack"), str):
            meta["nn_module_stack"] = _TARGET_MODULE.sub("pt2kit_target", meta["nn_module_stack"])
        if isinstance(meta.get("from_node"), str):
            meta["from_node"] = _GRAPH_ID.sub(r"\g<1>0", meta["from_node"])
        out["metadata"] = meta
    return out


def build_key(program: str, settings: dict[str, Any], device: str, dtype: str | None) -> str:
    """The cache key of one build: program digest, settings, device, dtype, torch and pt2kit versions."""
    from pt2kit import __version__

    payload = json.dumps(
        # "build": bumped when the build itself changes, so older cached packages are not reused
        # (2: builds run under no_grad, so `freezing` applies)
        {"program": program, "settings": settings, "device": device, "dtype": dtype, "torch": torch.__version__, "pt2kit": __version__,
         "build": 2},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CacheEntry:
    """A cached package and the time its original build took."""

    path: Path
    build_seconds: float


class BuildCache:
    """Packages on disk by build key. Safe to share between processes (atomic renames)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.aoti.pt2", self.root / f"{key}.json"

    def get(self, key: str) -> CacheEntry | None:
        """The entry for `key`, or None (also when a half-deleted entry lacks either file)."""
        package, meta = self._paths(key)
        if not (package.is_file() and meta.is_file()):
            return None
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        return CacheEntry(package, float(info.get("build_seconds", 0.0)))

    def put(self, key: str, built: Path, build_seconds: float) -> None:
        """Copy `built` into the cache; a failure here never fails the build."""
        package, meta = self._paths(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with atomic_path(package) as tmp:
                shutil.copyfile(built, tmp)
            with atomic_path(meta) as tmp:
                tmp.write_text(json.dumps({"build_seconds": build_seconds, "torch": torch.__version__}))
        except OSError:
            pass
