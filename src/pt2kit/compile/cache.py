"""The build cache: finished AOTInductor packages keyed by everything that shapes them.

The key is a SHA-256 over the serialized program (graph, signature, ranges; without the
weights), the weights' own SHA-256, the Inductor settings, the device, the dtype and the
torch and pt2kit versions. An entry is `<key>.aoti.pt2` plus `<key>.json` (how long the
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

from pt2kit.artifact.loader import default_cache_dir
from pt2kit.artifact.package import atomic_path


def program_digest(ep: torch.export.ExportedProgram, weights_sha256: str) -> str:
    """SHA-256 of the serialized program (weights excluded) combined with the weights' SHA-256."""
    from torch._export.serde.serialize import serialize

    try:
        artifact = serialize(ep, serialize_state_dict=False, serialize_constants=False, serialize_example_inputs=False)
    except TypeError:  # older torch: no switches; the pickled weights are in the digest too (still deterministic)
        artifact = serialize(ep)
    # node provenance (`from_node`) records `graph_id`, a Python object id: different in every process, so
    # it would make every re-exported program (`--dtype`, a TARGET exported again) miss the cache
    text = re.sub(rb'(graph_id\\*"\s*:\s*)\d+', rb"\g<1>0", artifact.exported_program)
    # a program re-exported through a wrapper (`--dtype`'s casts, `--quantize`) has stack traces through the inner
    # GraphModule's generated code, named `<eval_with_key>.N` with N counting up in each process
    digest = hashlib.sha256(re.sub(rb"<eval_with_key>\.\d+", b"<eval_with_key>", text))
    digest.update(weights_sha256.encode())
    return digest.hexdigest()


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
