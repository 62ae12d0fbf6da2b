"""Weights stored in a package one tensor at a time: map them from the archive and hand them to the loader.

A package built with `--external-weights on` (or `auto` above the threshold; see `pt2kit.compile.external`) has
no weights in its `.so` and no `*_weights.blob`: AOTInductor's `package_constants_on_disk_format="pickle_weights"`
stores each weight storage as a `torch.save` file at `data/weights/weight_N` in the archive, and
`data/aotinductor/model/weights_config.json` maps each constant to `[file, shape, stride, storage_offset]`.
`AOTIModelPackageLoader` opens such a package without its weights; they are given to it with
`load_constants`. torch's own reader (`load_pt2(path, load_weights_from_disk=True)`) copies every file into
memory and unpickles it; this module instead memory-maps the archive and builds each tensor over the bytes
where they lie (both the archive's and `torch.save`'s entries are stored uncompressed and 64-byte aligned), so
nothing is copied on CPU and, on CUDA, each tensor goes to the device straight from the page cache.

The small pickle of each file (`data.pkl`: dtype, size, strides) is read with torch's `weights_only`
unpickler, which builds nothing but tensors.

The map is private (copy-on-write) and lives as long as the loaded package: pt2kit writes packages by renaming a
finished file into place, which leaves a mapped one intact; a package truncated in place while loaded would not be.
"""

from __future__ import annotations

import json
import mmap
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pt2kit.errors import ArtifactError

WEIGHTS_CONFIG = "data/aotinductor/model/weights_config.json"
WEIGHTS_DIR = "data/weights/"
_ALIGN = 64  # what PyTorchStreamWriter aligns records to, and what Inductor's CPU kernels get from their own blob
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # a zip local file header, before its name and extra field


@dataclass(frozen=True)
class StoredWeights:
    """Where a package's per-tensor weights are: the archive's root folder and each constant's entry."""

    root: str
    config: dict  # constant fqn -> [file, shape, stride, storage_offset]

    @classmethod
    def find(cls, path: Path) -> "StoredWeights | None":
        """The package's per-tensor weights, or None when its weights are in the `.so` or a blob."""
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            entry = next((n for n in names if n.split("/", 1)[-1] == WEIGHTS_CONFIG), None)
            if entry is None:
                return None
            try:
                config = json.loads(zf.read(entry))
            except ValueError:
                raise ArtifactError(f"`{path.name}` has an unreadable `{entry}`; rebuild it with `pt2kit compile`") from None
        return cls(entry.split("/", 1)[0], config)


def _data_offset(fp, info: zipfile.ZipInfo, base: int = 0) -> int:
    """Where the bytes of a stored zip entry start, from its local header (the central directory does not say)."""
    fp.seek(base + info.header_offset)
    fields = _LOCAL_HEADER.unpack(fp.read(_LOCAL_HEADER.size))
    if fields[0] != b"PK\x03\x04":
        raise ArtifactError(f"`{info.filename}` has no zip local header where the directory says")
    return info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]


class _Slice:
    """A read-only file over `[start, start + size)` of another file, for `zipfile` to read a nested archive."""

    def __init__(self, fp, start: int, size: int):
        self.fp, self.start, self.size, self.pos = fp, start, size, 0

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        self.fp.seek(self.start + self.pos)
        data = self.fp.read(n)
        self.pos += len(data)
        return data


def _mapped_file(mm: mmap.mmap, fp, outer: zipfile.ZipInfo, start: int, name: str, device: torch.device) -> torch.Tensor:
    """Unpickle one `torch.save` file at `start` in the archive, its storage built over the mapped bytes (on CPU)
    or copied from them to `device` as a whole storage, so views keep their offsets into it."""
    from torch._weights_only_unpickler import Unpickler  # the loader torch.load(weights_only=True) uses

    if outer.compress_type != zipfile.ZIP_STORED:
        raise ArtifactError(f"`{name}` is compressed in the archive; rebuild the package with `pt2kit compile`")
    inner = zipfile.ZipFile(_Slice(fp, start, outer.file_size))
    records = {info.filename.split("/", 1)[-1]: info for info in inner.infolist()}
    if "data.pkl" not in records:
        raise ArtifactError(f"`{name}` is not a torch.save file; rebuild the package with `pt2kit compile`")

    def persistent_load(pid):
        _, storage_type, key, _location, numel = pid
        dtype = torch.uint8 if storage_type is torch.UntypedStorage else storage_type.dtype  # as torch.load reads it
        record = records.get(f"data/{key.decode() if isinstance(key, bytes) else key}")
        if record is None or record.compress_type != zipfile.ZIP_STORED:
            raise ArtifactError(f"`{name}` lacks the stored record of storage {key}; rebuild the package with `pt2kit compile`")
        nbytes = numel * torch._utils._element_size(dtype)
        offset = start + _data_offset(inner.fp, record)
        if nbytes and offset + nbytes > len(mm):
            raise ArtifactError(f"`{name}` points past the end of the archive; it is truncated: rebuild it")
        raw = torch.frombuffer(mm, dtype=torch.uint8, count=nbytes, offset=offset) if nbytes else torch.empty(0, dtype=torch.uint8)
        if device.type != "cpu":
            raw = raw.to(device)
        elif offset % _ALIGN:  # torch aligns its records; a rewritten archive may not: kernels get aligned memory anyway
            raw = raw.clone()
        return torch.storage.TypedStorage(wrap_storage=raw.untyped_storage(), dtype=dtype, _internal=True)

    with inner.open(records["data.pkl"]) as pkl:
        unpickler = Unpickler(pkl)
        unpickler.persistent_load = persistent_load
        tensor = unpickler.load()
    if not isinstance(tensor, torch.Tensor):
        raise ArtifactError(f"`{name}` holds a `{type(tensor).__name__}`, not a tensor; rebuild the package with `pt2kit compile`")
    return tensor


def map_weights(path: Path, stored: StoredWeights, device: torch.device) -> dict[str, torch.Tensor]:
    """Every constant of the package as a tensor on `device`: over the mapped archive on CPU, copied one by one to CUDA.

    The CPU tensors keep the mapping alive (a private, copy-on-write map: the file is never written).

    Raises:
        ArtifactError: an entry is missing, compressed or truncated.
    """
    with open(path, "rb") as fp, zipfile.ZipFile(fp) as zf:
        mm = mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_COPY)
        files: dict[str, torch.Tensor] = {}
        out: dict[str, torch.Tensor] = {}
        for fqn, (file, shape, stride, offset) in stored.config.items():
            if file not in files:
                name = f"{stored.root}/{WEIGHTS_DIR}{file}"
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    raise ArtifactError(f"`{path.name}` lacks `{name}`, which its weights_config.json names; rebuild it") from None
                files[file] = _mapped_file(mm, fp, info, _data_offset(fp, info), name, device)
            out[fqn] = files[file].as_strided(shape, stride, offset)
    return out


def load_stored_weights(loader, path: Path, stored: StoredWeights, device: torch.device) -> dict[str, torch.Tensor]:
    """Map the package's weights and give them to an open `AOTIModelPackageLoader`; returns what it must keep alive.

    `user_managed=True` makes AOTInductor use the tensors as they are (no copy of its own), so the caller keeps
    the returned dict for the loader's lifetime.

    Raises:
        ArtifactError: the weights are unreadable or do not match the package's constants.
    """
    weights = map_weights(path, stored, device)
    missing = sorted(set(loader.get_constant_fqns()) - set(weights))
    if missing:
        raise ArtifactError(f"`{path.name}` stores no weight for `{missing[0]}` ({len(missing)} missing); rebuild it with `pt2kit compile`")
    try:
        loader.load_constants(weights, False, True, True)  # use_inactive, check_full_update, user_managed
    except TypeError:  # a torch whose binding has no user_managed: AOTInductor copies them
        loader.load_constants(weights, False, True)
    return weights
