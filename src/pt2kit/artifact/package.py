""".pt2 files on disk: write atomically with the manifest inside, read back with clear errors.

A pt2kit program is a standard `torch.export.save` archive with one extra file,
`pt2kit/manifest.json`, so plain `torch.export.load` reads it unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from enum import Enum
from pathlib import Path
from typing import Iterator

import torch

from pt2kit.errors import ArtifactError
from pt2kit.artifact.manifest import MANIFEST_NAME, Manifest

REGIONS_NAME = "pt2kit/regions.json"  # the manifest of a region archive (pt2kit.partial.archive writes it)


class ArtifactKind(str, Enum):
    PROGRAM = "program"  # an ExportedProgram saved by torch.export.save
    AOTI = "aoti"  # an AOTInductor package (compiled .so inside)
    REGIONS = "regions"  # a region archive from `pt2kit compile --partial` (pt2kit.partial)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    A crash or Ctrl-C inside the block leaves no file at `path` (and no temporary behind).
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ArtifactError(f"output folder `{path.parent}` does not exist; create it or choose another `-o` path")
    # a private folder beside the target keeps the file name (torch names the archive root
    # after it) and keeps the final rename on one filesystem
    folder = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent or ".")
    tmp = Path(folder) / path.name
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(folder, 0o777 & ~umask)
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_program(ep: torch.export.ExportedProgram, manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write `ep` to `path` as a standard `.pt2` with the manifest inside, atomically."""
    with atomic_path(path) as tmp:
        torch.export.save(ep, tmp, extra_files={MANIFEST_NAME: manifest.dumps()})
    return Path(path)


def artifact_kind(path: str | os.PathLike) -> ArtifactKind:
    """Tell a program from an AOTInductor package by its entries.

    Raises:
        ArtifactError: the file is missing or is not a `.pt2` archive at all.
    """
    names = _zip_names(Path(path))
    if REGIONS_NAME in names:
        return ArtifactKind.REGIONS
    if any("/data/aotinductor/" in n for n in names):
        return ArtifactKind.AOTI
    if any(n.endswith("models/model.json") or n.endswith("/serialized_exported_program.json") or "/models/" in n for n in names):
        return ArtifactKind.PROGRAM
    raise ArtifactError(f"`{path}` is a zip archive but not a .pt2 program or AOTInductor package; was it written by torch.export.save or pt2kit?")


def _zip_names(path: Path) -> list[str]:
    if not path.is_file():
        raise ArtifactError(f"artifact `{path}` does not exist; check the path or create it with `pt2kit export`")
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArtifactError(f"`{path}` is corrupt or truncated ({exc}); export it again with `pt2kit export`") from None


def read_manifest(path: str | os.PathLike) -> Manifest | None:
    """The manifest stored in a `.pt2` (program or package), or None for a plain torch file."""
    path = Path(path)
    names = _zip_names(path)
    entry = next((n for n in names if n.endswith("extra/" + MANIFEST_NAME) or n.endswith("/" + MANIFEST_NAME)), None)
    if entry is None:
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            return Manifest.from_json(json.loads(zf.read(entry)))
    except (zipfile.BadZipFile, OSError, ValueError, TypeError, KeyError) as exc:
        raise ArtifactError(f"the pt2kit manifest in `{path}` is damaged ({exc}); export the model again") from None


def load_program(path: str | os.PathLike) -> torch.export.ExportedProgram:
    """Read a `.pt2` program with `torch.export.load`, turning any failure into `ArtifactError`."""
    path = Path(path)
    kind = artifact_kind(path)
    if kind is ArtifactKind.REGIONS:
        raise ArtifactError(f"`{path}` is a region archive, not an exported program; apply it with `pt2kit.apply_regions(model, path)`")
    if kind is not ArtifactKind.PROGRAM:
        raise ArtifactError(f"`{path}` is an AOTInductor package, not an exported program; load it with `pt2kit.load`")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
        if bad is not None:
            raise ArtifactError(f"`{path}` is corrupt (entry `{bad}` fails its checksum); export it again")
        return torch.export.load(path)
    except ArtifactError:
        raise
    except Exception as exc:  # torch raises many types for a damaged archive
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"cannot load `{path}` as an exported program ({first}); export it again") from None
