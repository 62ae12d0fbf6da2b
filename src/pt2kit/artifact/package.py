""".pt2 files on disk: write atomically with the manifest inside, read back with clear errors.

A pt2kit program is a standard `torch.export.save` archive with one extra file,
`pt2kit/manifest.json`, so plain `torch.export.load` reads it unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import zipfile
from enum import Enum
from pathlib import Path
from typing import Iterator

import torch

from pt2kit.errors import ArtifactError, OutputPathError
from pt2kit.artifact.manifest import MANIFEST_NAME, Manifest

REGIONS_NAME = "pt2kit/regions.json"  # the manifest of a region archive (pt2kit.artifact.regions.archive writes it)


class ArtifactKind(str, Enum):
    PROGRAM = "program"  # an ExportedProgram saved by torch.export.save
    AOTI = "aoti"  # an AOTInductor package (compiled .so inside)
    REGIONS = "regions"  # a region archive from `pt2kit compile --partial` (pt2kit.partial)


# Temporaries carry this mark, a host tag and the writer's pid: `.model.pt2.pt2kit-tmp-<host>-<pid>-<random>`.
# A write killed midway (SIGKILL, power loss) leaves one behind; the next write in that folder sweeps it.
TEMP_MARK = ".pt2kit-tmp-"
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_FOREIGN_AGE_S = 24 * 3600  # a temporary from another host is swept only once it is this old


def check_output_path(path: str | os.PathLike, flag: str = "-o") -> Path:
    """Check that `path` can be written as a file, before any work: not a folder, in a folder that exists and
    takes new files. Probes the folder with a temporary folder it removes at once.

    Raises:
        OutputPathError: the path is a folder, its folder is missing or is a file, or nothing can be written there.

    Example:
        >>> check_output_path("out/model.pt2", "-o")
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"`{flag} {path}` is a folder; name a file in it, e.g. `{flag} {path / _example_name(flag)}`")
    parent = path.parent
    if not parent.exists():
        raise OutputPathError(f"output folder `{parent}` does not exist; create it or choose another `{flag}` path")
    if not parent.is_dir():
        raise OutputPathError(f"`{flag} {path}`: `{parent}` is a file, not a folder; choose another `{flag}` path")
    _probe(parent, flag)
    return path


def check_output_folder(folder: str | os.PathLike, flag: str) -> Path:
    """Check that `folder` is (or can be created as) a writable folder, without creating it.

    Raises:
        OutputPathError: it is a file, or its nearest existing parent is a file or cannot be written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"`{flag} {folder}` is a file, not a folder; name a folder (it is created if missing)")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"`{flag} {folder}`: `{existing}` is a file, not a folder; choose another `{flag}` folder")
    _probe(existing, flag)
    return folder


def _probe(folder: Path, flag: str) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".probe{TEMP_MARK}{HOST_TAG}-{os.getpid()}-", dir=folder))
    except OSError as exc:
        raise OutputPathError(f"cannot write in `{folder}` ({exc.strerror or exc}); choose another `{flag}` path") from None


def _example_name(flag: str) -> str:
    return {"--out": "outputs.safetensors", "--write-patch": "fix.patch"}.get(flag, "model.pt2")


def sweep_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that killed pt2kit writes left in `folder`: those of this host whose process is
    gone, and those of other hosts older than a day. Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if TEMP_MARK not in entry.name or not entry.name.startswith("."):
            continue
        host, _, rest = entry.name.partition(TEMP_MARK)[2].partition("-")
        pid = rest.partition("-")[0]
        try:
            stale = (host == HOST_TAG and pid.isdigit() and not _alive(int(pid))) or (
                host != HOST_TAG and time.time() - entry.stat(follow_symlinks=False).st_mtime > _FOREIGN_AGE_S)
            if stale:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # another process swept it first, or it is not ours to remove
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.

    A crash or Ctrl-C inside the block leaves no file at `path` (and no temporary behind); a SIGKILL leaves
    either the old file or the complete new one at `path`, and a temporary that the next write in the
    folder sweeps (`sweep_temporaries`).

    Raises:
        OutputPathError: `path` is a folder, its folder is missing or read-only, or the disk is full.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"output `{path}` is a folder; name a file in it, e.g. `{path / path.name}`")
    if path.parent and not path.parent.exists():
        raise OutputPathError(f"output folder `{path.parent}` does not exist; create it or choose another `-o` path")
    sweep_temporaries(path.parent)
    # a private folder beside the target keeps the file name (torch names the archive root
    # after it) and keeps the final rename on one filesystem
    try:
        folder = tempfile.mkdtemp(prefix=f".{path.name}{TEMP_MARK}{HOST_TAG}-{os.getpid()}-", dir=path.parent or ".")
    except OSError as exc:
        raise OutputPathError(f"cannot write `{path}` ({exc.strerror or exc}); choose another output path") from None
    tmp = Path(folder) / path.name
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise OutputPathError(f"cannot write `{path}` ({exc.strerror}); free space or choose another output path") from None
            raise
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(folder, 0o777 & ~umask)
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~umask)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputPathError(f"cannot write `{path}` ({exc.strerror or exc}); choose another output path") from None
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
            return Manifest.from_json(json.loads(zf.read(entry)), f"`{path}`")
    except ArtifactError:
        raise
    except (RecursionError, MemoryError):  # JSON nested or sized to exhaust the parser
        raise ArtifactError(f"the pt2kit manifest in `{path}` is damaged (too deeply nested or too large); export the model again") from None
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
        manifest = read_manifest(path)
        if manifest is not None and (manifest.pytree_types or manifest.pytree_imports):
            from pt2kit.pytrees.types import restore_registrations  # only programs with such types pay for it

            restore_registrations(manifest.pytree_types, manifest.pytree_imports, f"`{path}`")
        return torch.export.load(path)
    except ArtifactError:
        raise
    except Exception as exc:  # torch raises many types for a damaged archive
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if "not registered" in first:
            raise ArtifactError(f"cannot load `{path}`: {first}; call `pt2kit.register_types(path)` before "
                                "`torch.export.load`, or load it with `pt2kit.load`") from None
        raise ArtifactError(f"cannot load `{path}` as an exported program ({first}); export it again") from None
